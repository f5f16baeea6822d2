"""Replays README.md and the examples of docs/ as a user would: every ```sh block that
runs grpcurl or curl is run by bash, as printed, with the real grpcurl (built from
../shared/tools/grpcurl by ./dev) against real processes, and what it prints is compared
with the ```json or ```text block right after it, exactly, except for timestamps.

Each document is one session against a fresh control plane (started with the README's
key `demo-key` and agent token `demo-agent-token`); a block that starts
`chainscale-agent` starts an agent at that point of the session. Addresses are the
documented defaults (localhost:50051, :8080, :50061), mapped to the test's ports."""

import os
import re
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "system"))
from chainscale_process import Agent, ControlPlane  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
DOCUMENTS = ["README.md", "docs/api.md"]
GRPCURL = os.environ.get("CHAINSCALE_GRPCURL", "")
KEY = "demo-key"
AGENT_TOKEN = "demo-agent-token"
TIMESTAMP = re.compile(r'"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"')
SKIP = 77  # ctest's SKIP_RETURN_CODE for this test


class Step:
    """One command of a document and what the document says it prints."""

    def __init__(self, document, line, command, expected):
        self.document = document
        self.line = line
        self.command = command
        self.expected = expected  # None when the document shows no output

    def __repr__(self):
        return "%s:%d" % (self.document, self.line)


def steps(document):
    """The grpcurl, curl and agent-starting commands of a document, in order."""
    with open(os.path.join(ROOT, document)) as f:
        text = f.read()
    blocks = [(m.group(1), m.group(2), m.start(), m.end())
              for m in re.finditer(r"^```(\w*)\n(.*?)^```[ \t]*$", text, re.S | re.M)]
    out = []
    for i, (lang, body, start, _) in enumerate(blocks):
        if lang != "sh":
            continue
        line = text.count("\n", 0, start) + 1
        first = body.lstrip().split(None, 1)[0] if body.strip() else ""
        if first not in ("grpcurl", "curl") and "chainscale-agent " not in body:
            continue
        expected = None
        if i + 1 < len(blocks):
            next_lang, next_body, next_start, _ = blocks[i + 1]
            between = text[blocks[i][3]:next_start]
            if next_lang in ("json", "text") and not between.strip():
                expected = next_body
        out.append(Step(document, line, body, expected))
    return out


def normalize(text):
    return TIMESTAMP.sub('"<timestamp>"', text)


class DocumentSession:
    """The processes one document's commands run against."""

    def __init__(self, test):
        self.test = test
        self.dir = tempfile.TemporaryDirectory()
        self.cp = ControlPlane(os.environ["CHAINSCALE_CONTROL_PLANE"], self.dir.name, KEY,
                               agent_token=AGENT_TOKEN).start()
        self.agent = None

    def close(self):
        if self.agent:
            self.agent.kill()
        self.cp.kill()
        self.dir.cleanup()

    def start_agent(self):
        # No tick in the session: the answers are what the reports decide, as the
        # README shows them for an agent that just started.
        self.agent = Agent(os.environ["CHAINSCALE_AGENT"], self.cp.address, KEY, AGENT_TOKEN,
                           extra_args=["--agent_id=agent-1", "--decision_interval=1h"]).start()
        # The agent serves once it applied its first snapshot from the control plane.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            out = self.run_shell("grpcurl -plaintext localhost:50061 grpc.health.v1.Health/Check")
            if '"SERVING"' in out.stdout:
                return
            time.sleep(0.1)
        self.test.fail("the agent did not become SERVING:\n" + "\n".join(self.agent.log))

    def localize(self, command):
        """The command with the test's grpcurl and ports."""
        command = command.replace("localhost:50051", self.cp.address)
        command = command.replace("localhost:8080", "127.0.0.1:%d" % self.cp.http_port)
        if self.agent:
            command = command.replace("localhost:50061", self.agent.address)
        return re.sub(r"^(\s*)grpcurl ", r"\1%s " % GRPCURL, command, flags=re.M)

    def run_shell(self, command, timeout=30):
        return subprocess.run(["bash", "-c", self.localize(command)], capture_output=True,
                              text=True, timeout=timeout)

    def run_stream(self, command, timeout=30):
        """A streaming call runs until stopped: its first message, then Ctrl-C."""
        lines = []
        with subprocess.Popen(["bash", "-c", "exec " + self.localize(command).strip()],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True) as proc:
            try:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    line = proc.stdout.readline()
                    if not line:
                        break
                    lines.append(line)
                    if line == "}\n":  # grpcurl ends each message with a brace alone
                        break
            finally:
                proc.kill()
        return "".join(lines)


@unittest.skipUnless(os.access(GRPCURL, os.X_OK), "no grpcurl")
class DocumentedSessionsTest(unittest.TestCase):
    def test_readme_session_has_the_documented_calls(self):
        readme = steps("README.md")
        shown = [s for s in readme if s.expected is not None]
        self.assertGreaterEqual(len(shown), 10, readme)
        commands = " ".join(s.command for s in readme)
        for call in ("list", "describe chainscale.v1.ControlPlane", "Health/Check",
                     "CreateChain", "UpdateChainletEnvironmentAutoscalingSettings",
                     "GetChainEnvironment", "ReportLoad", "WatchScalingDecisions",
                     "curl --request PATCH"):
            self.assertIn(call, commands)

    def test_describe_everything_on_both_servers(self):
        session = DocumentSession(self)
        try:
            session.start_agent()
            for address, api in (("localhost:50051", "chainscale.v1.ControlPlane"),
                                 ("localhost:50061", "chainscale.v1.Agent")):
                out = session.run_shell("grpcurl -plaintext %s describe" % address)
                self.assertEqual(out.returncode, 0, out.stderr)
                for service in (api, "grpc.health.v1.Health",
                                "grpc.reflection.v1.ServerReflection",
                                "grpc.reflection.v1alpha.ServerReflection"):
                    self.assertIn(service + " is a service:", out.stdout)
                out = session.run_shell(
                    "grpcurl -plaintext %s grpc.health.v1.Health/Check" % address)
                self.assertEqual((out.returncode, out.stdout),
                                 (0, '{\n  "status": "SERVING"\n}\n'), out.stderr)
        finally:
            session.close()

    def test_every_document_prints_what_it_shows(self):
        for document in DOCUMENTS:
            with self.subTest(document=document):
                self.replay(document)

    def replay(self, document):
        session = DocumentSession(self)
        try:
            for step in steps(document):
                if "chainscale-agent " in step.command:
                    session.start_agent()
                    continue
                if "WatchScalingDecisions" in step.command:
                    printed = session.run_stream(step.command)
                    self.assertTrue(printed, "%r printed nothing" % step)
                    if step.expected is not None:
                        self.assertEqual(normalize(printed), normalize(step.expected), step)
                    continue
                out = session.run_shell(step.command)
                if step.expected is not None and step.expected.startswith("ERROR:"):
                    self.assertNotEqual(out.returncode, 0, step)
                    self.assertEqual(normalize(out.stderr), normalize(step.expected), step)
                    continue
                self.assertEqual(out.returncode, 0, "%r: %s" % (step, out.stderr))
                if step.expected is not None:
                    self.assertEqual(normalize(out.stdout), normalize(step.expected), step)
                if "describe chainscale.v1.ControlPlane" in step.command:
                    # The API reference comes from the server, comments included.
                    self.assertIn("// Management API and agent synchronisation.", out.stdout)
        finally:
            session.close()


if __name__ == "__main__":
    if not os.access(GRPCURL, os.X_OK):
        print("SKIPPED: grpcurl is not built at %r; ./dev test builds it from "
              "../shared/tools/grpcurl/build.sh" % GRPCURL)
        sys.exit(SKIP)
    unittest.main()
