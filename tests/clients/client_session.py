"""What the Node and Go client tests share: the processes the clients talk to, the
commands and code docs/clients.md prints for each language, and the checks of what a
client printed (create, update, get, invalid update, report, decision)."""

import json
import os
import re
import sys
import tempfile
import time

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "system"))
from chainscale_process import Agent, ControlPlane  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLIENTS_DOC = os.path.join(ROOT, "docs", "clients.md")
KEY = "client-key"
AGENT_TOKEN = "client-agent-token"
SKIP = 77  # ctest's SKIP_RETURN_CODE for these tests


def skip(reason):
    """Ends the test as skipped, saying why."""
    print("SKIPPED: " + reason)
    sys.exit(SKIP)


def doc_section(language):
    """The text of docs/clients.md under `## language`."""
    with open(CLIENTS_DOC) as f:
        text = f.read()
    match = re.search(r"^## %s\n(.*?)(?=^## |\Z)" % re.escape(language), text, re.S | re.M)
    assert match, "docs/clients.md has no section ## " + language
    return match.group(1)


def doc_blocks(language, lang):
    """The ```lang blocks of a language's section, in order."""
    return re.findall(r"^```%s\n(.*?)^```" % lang, doc_section(language), re.S | re.M)


class Servers:
    """A control plane and an agent serving every chain, both with keys."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory()
        self.cp = ControlPlane(os.environ["CHAINSCALE_CONTROL_PLANE"], self.dir.name, KEY,
                               agent_token=AGENT_TOKEN).start()
        # No tick during a session: a tick after the update would lift HelloWorld to its
        # new min_replica (2) before the report, and the report's cold start (0 -> 3,
        # capped) the sessions check would then not happen; the decision would wait for
        # the next tick.
        self.agent = Agent(os.environ["CHAINSCALE_AGENT"], self.cp.address, KEY, AGENT_TOKEN,
                           extra_args=["--agent_id=client-agent",
                                       "--decision_interval=1h"]).start()
        # Serving once its first snapshot is applied: updates then answer ACCEPTED.
        with grpc.insecure_channel(self.agent.address) as channel:
            check = channel.unary_unary("/grpc.health.v1.Health/Check")
            deadline = time.monotonic() + 30
            while check(b"", timeout=5) != b"\x08\x01":  # status: SERVING
                if time.monotonic() > deadline:
                    raise RuntimeError("the agent did not become SERVING")
                time.sleep(0.05)

    def close(self):
        self.agent.kill()
        self.cp.kill()
        self.dir.cleanup()


def check_client_output(test, stdout, chain_id, invalid_code):
    """Asserts what a client printed, one JSON line per step."""
    steps = {}
    for line in stdout.splitlines():
        record = json.loads(line)
        steps[record["step"]] = record["value"]
    test.assertEqual(sorted(steps), ["create", "decision", "get", "invalid", "report",
                                     "update"], stdout)

    chain = steps["create"]
    test.assertEqual(chain["chain_id"], chain_id)
    test.assertEqual(chain["chainlet_names"], ["HelloWorld", "RandInt"])
    test.assertEqual(chain["environments"], ["development", "production"])
    test.assertEqual(chain["revision"], "1")  # int64 as a string

    test.assertEqual(steps["update"]["status"], "ACCEPTED")  # an enum by name
    test.assertIn("HelloWorld: min_replica from 0 to 2, max_replica from 1 to 3, "
                  "scale_down_delay from 900 to 63", steps["update"]["message"])

    env = steps["get"]
    test.assertEqual([c["chainlet_name"] for c in env["chainlet_settings"]],
                     ["HelloWorld", "RandInt"])
    hello = env["chainlet_settings"][0]
    test.assertEqual(hello["revision"], "2")
    test.assertEqual(hello["autoscaling_settings"], {
        "min_replica": 2, "max_replica": 3, "autoscaling_window": 60, "scale_down_delay": 63,
        "concurrency_target": 1, "target_utilization_percentage": 70,
        "max_scale_down_rate": 50})  # target_in_flight_tokens unset: absent

    invalid = steps["invalid"]
    test.assertEqual(invalid["code"], invalid_code)
    test.assertEqual(invalid["details"], "updates[0].autoscaling_settings.min_replica: "
                     "min_replica (5) must not exceed max_replica (1)")
    test.assertEqual([sorted(v.items()) for v in invalid["field_violations"]], [[
        ("description", "min_replica (5) must not exceed max_replica (1)"),
        ("field", "updates[0].autoscaling_settings.min_replica")]])

    # 5 in flight at 0.7 per replica needs 8: capped at max_replica 3.
    (decision,) = steps["report"]["decisions"]
    for d in (decision, steps["decision"]):
        test.assertEqual((d["chainlet_name"], d["desired_replicas"], d["status"], d["capped"],
                          d["settings_revision"]), ("HelloWorld", 3, "ACCEPTED", True, "2"))
