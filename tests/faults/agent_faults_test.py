"""Agent faults against the real binaries (DESIGN §5-§8).

- A control plane that stops answering (SIGSTOP): the agent keeps deciding every
  interval, keeps serving decisions, notices the dead connection (keepalive) and exits
  within 2 s on SIGTERM.
- 100 000 chainlets: every first decision reaches the control plane's store.
- Watchers that never read: memory stays bounded, they are ended with RESOURCE_EXHAUSTED,
  and ticks go on.
- /metrics at 100 000 chainlets: bounded output and memory under parallel scrapes, and
  the output passes promtool check metrics (when promtool is installed).
- Smaller: a StreamLoad batch over the cap, a new source repeated within one batch, a
  control character in a source id, NUL inside names on read paths.
Each class prints what it tried and what held.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "system"))
from chainscale_process import Agent, ControlPlane, wait_for  # noqa: E402
from chainscale.v1 import agent_pb2, agent_pb2_grpc  # noqa: E402
from chainscale.v1 import control_plane_pb2 as cp  # noqa: E402
from chainscale.v1 import control_plane_pb2_grpc as cp_grpc  # noqa: E402
from chainscale.v1 import settings_pb2  # noqa: E402

API_KEY = "agent-fault-key"
TOKEN = "agent-fault-token"
AUTH = (("authorization", "Api-Key " + API_KEY),)
# Under ASan and UBSan time and memory are the sanitizers' (quarantine, redzones, slower
# code): the suite then checks every outcome but not the time and memory bounds.
SANITIZED = os.environ.get("CHAINSCALE_SANITIZED") == "1"
BOUNDS = "not asserted under sanitizers" if SANITIZED else "asserted"
TIMEOUT = 30
ENDING = "ending a watch that cannot keep up"


def create_chains(stub, chains, chainlets_per_chain):
    """`chains` chains of `chainlets_per_chain` chainlets each, in production and
    development: 2 × chains × chainlets_per_chain chainlets."""
    names = ["chainlet-%03d" % i for i in range(chainlets_per_chain)]
    for c in range(chains):
        stub.CreateChain(cp.CreateChainRequest(chain_id="c%03d" % c, chainlet_names=names),
                         metadata=AUTH, timeout=TIMEOUT)
    return names


def report_everything(agent_stub, chains, names, in_flight, source="replica-1"):
    """One ReportLoad batch per chain: a report for every chainlet of its production."""
    for c in range(chains):
        agent_stub.ReportLoad(agent_pb2.ReportLoadRequest(reports=[
            agent_pb2.LoadReport(source_id=source, chain_id="c%03d" % c, env_name="production",
                                 chainlet_name=name, in_flight_requests=in_flight)
            for name in names]), metadata=AUTH, timeout=TIMEOUT)


def decided_at(stub, chain="c000", chainlet="chainlet-000"):
    d = stub.GetScalingDecision(agent_pb2.GetScalingDecisionRequest(
        chain_id=chain, env_name="production", chainlet_name=chainlet),
        metadata=AUTH, timeout=5)
    return d.decided_at.ToNanoseconds() / 1e9


class AgentFaultBase(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.processes = []
        self.cp = ControlPlane(os.environ["CHAINSCALE_CONTROL_PLANE"], self.dir.name, API_KEY,
                               agent_token=TOKEN).start()
        self.processes.append(self.cp)
        self.channel = grpc.insecure_channel(self.cp.address)
        self.stub = cp_grpc.ControlPlaneStub(self.channel)

    def tearDown(self):
        for p in self.processes:
            if p.proc.poll() is None:
                p.proc.send_signal(signal.SIGCONT)
            p.kill()
        self.channel.close()
        self.dir.cleanup()

    def start_agent(self, *args):
        agent = Agent(os.environ["CHAINSCALE_AGENT"], self.cp.address, API_KEY, TOKEN,
                      ["--agent_id=fault-agent"] + list(args)).start()
        self.processes.append(agent)
        channel = grpc.insecure_channel(agent.address, options=[
            ("grpc.max_receive_message_length", 64 << 20)])
        return agent, agent_pb2_grpc.AgentStub(channel)

    def wait_applied(self, agent):
        revision = self.cp.revision()
        self.assertTrue(wait_for(lambda: agent_revision(agent) >= revision, timeout=120),
                        "the agent never applied revision %d" % revision)


def agent_revision(agent):
    try:
        match = re.search(r"^chainscale_settings_revision (\d+)$", agent.metrics(), re.M)
    except OSError:
        return 0
    return int(match.group(1)) if match else 0


class StalledControlPlaneTest(AgentFaultBase):
    def test_the_agent_keeps_deciding_when_the_control_plane_stops(self):
        names = create_chains(self.stub, 4, 500)  # 4 000 chainlets
        for c in range(4):
            self.stub.UpdateChainletEnvironmentAutoscalingSettings(
                cp.UpdateChainletEnvironmentAutoscalingSettingsRequest(
                    chain_id="c%03d" % c, env_name="production",
                    updates=[cp.ChainletEnvironmentAutoscalingSettingsUpdate(
                        chainlet_name=name, autoscaling_settings=settings_pb2.AutoscalingSettings(
                            max_replica=100, autoscaling_window=10, scale_down_delay=0))
                        for name in names]), metadata=AUTH, timeout=TIMEOUT)
        # A lease longer than the stall: within its lease an owner keeps deciding whatever
        # the control plane does (after it, it holds; tests/system/ownership_test.py).
        agent, stub = self.start_agent("--decision_interval=200ms", "--lease_ttl=60s")
        self.wait_applied(agent)
        # Load swinging hard on every chainlet, so every tick has decisions to send.
        stop = threading.Event()

        def churn():
            high = True
            while not stop.is_set():
                try:
                    report_everything(stub, 4, names, 300 if high else 1)
                except grpc.RpcError:
                    pass
                high = not high
        thread = threading.Thread(target=churn, daemon=True)
        thread.start()
        self.assertTrue(wait_for(lambda: decided_at(stub) > 0, timeout=30))
        self.cp.proc.send_signal(signal.SIGSTOP)
        stalled_at = time.monotonic()
        try:
            # Ticks go on: each look sees a decision made within the last two seconds.
            looks = 0
            late = []
            while time.monotonic() - stalled_at < 20:
                age = time.time() - decided_at(stub)
                looks += 1
                if age > 2.0:
                    late.append(round(age, 1))
                time.sleep(0.5)
            # Keepalive noticed that the control plane stopped answering.
            disconnected = re.search(r"^chainscale_sync_connected 0$", agent.metrics(), re.M)
            stop.set()
            thread.join(timeout=30)
            # SIGTERM ends the agent within 2 s, the control plane still stopped.
            agent.proc.send_signal(signal.SIGTERM)
            t0 = time.monotonic()
            try:
                code = agent.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                code = None
            took = time.monotonic() - t0
        finally:
            self.cp.proc.send_signal(signal.SIGCONT)
        print("\nagent/stalled control plane: %d looks at the decision loop over 20 s, %d "
              "late; keepalive noticed: %s; SIGTERM took %.2f s" %
              (looks, len(late), bool(disconnected), took))
        print("agent/stalled control plane: time bounds %s" % BOUNDS)
        self.assertTrue(disconnected, "the dead connection went unnoticed")
        self.assertEqual(code, 0)
        if not SANITIZED:
            self.assertEqual(late, [], "ticks stalled while the control plane was stopped")
            self.assertLess(took, 2.0)


class ManyChainletsTest(AgentFaultBase):
    def test_every_first_decision_of_100000_chainlets_is_stored(self):
        names = create_chains(self.stub, 100, 500)  # 100 000 chainlets
        agent, stub = self.start_agent()
        self.wait_applied(agent)
        report_everything(stub, 100, names, 5)  # every production chainlet leaves zero

        def stored():
            count = 0
            for c in range(100):
                env = self.stub.GetChainEnvironment(cp.GetChainEnvironmentRequest(
                    chain_id="c%03d" % c, env_name="production"), metadata=AUTH, timeout=TIMEOUT)
                count += sum(1 for s in env.chainlet_settings
                             if s.decision.desired_replicas == 1)
            return count
        counts = []
        self.assertTrue(wait_for(lambda: counts.append(stored()) or counts[-1] == 50_000,
                                 timeout=120, interval=1),
                        "stored %s of 50 000 first decisions" % counts[-1:])
        print("\nagent/100 000 chainlets: %d of 50 000 changed decisions stored" % counts[-1])


class SilentWatchersTest(AgentFaultBase):
    def test_watchers_that_never_read_are_ended_and_cost_bounded_memory(self):
        names = create_chains(self.stub, 100, 500)  # 100 000 chainlets
        agent, stub = self.start_agent("--decision_interval=500ms")
        self.wait_applied(agent)
        report_everything(stub, 100, names, 3)
        before = agent.rss_bytes()
        calls = []
        channels = []
        for _ in range(10):
            channel = grpc.insecure_channel(agent.address)
            channels.append(channel)
            # A call that is never read: its messages pile up unless the agent bounds them.
            calls.append(agent_pb2_grpc.AgentStub(channel).WatchScalingDecisions(
                agent_pb2.WatchScalingDecisionsRequest(include_unchanged=True), metadata=AUTH))
        peak = [before]
        ended = []
        late = []

        def progress():
            peak[0] = max(peak[0], agent.rss_bytes())
            # Ticks go on while the watchers are there: none ten intervals late. (A tick
            # that builds every decision for ten watchers costs ~3x a plain one, see
            # BM_AgentTickWatchedWhole; on a loaded 2-core machine that is ~2 s.)
            age = time.time() - decided_at(stub)
            if age > 5.0:
                late.append(round(age, 1))
            # Done when the agent has ended all ten. Under sanitizers a tick of 100 000
            # chainlets takes seconds, so the backlog needs longer to pass its bound.
            return sum(ENDING in line for line in agent.log) >= 10
        wait_for(progress, timeout=180 if SANITIZED else 30, interval=0.5)
        # gRPC delivers a status after the messages before it: a watcher learns that it was
        # ended once it reads what its own flow-control window already holds. Each call is
        # read for at most 100 000 messages and 20 s (an agent that never ends it would go
        # on sending).
        held = []

        def drain(call):
            read = 0
            watchdog = threading.Timer(20, call.cancel)
            watchdog.start()
            try:
                for _ in call:
                    read += 1
                    if read == 100_000:
                        break
            except grpc.RpcError as e:
                ended.append(e.code())
            finally:
                watchdog.cancel()
                call.cancel()
            held.append(read)
        drains = [threading.Thread(target=drain, args=(call,)) for call in calls]
        for t in drains:
            t.start()
        for t in drains:
            t.join()
        for channel in channels:
            channel.close()
        grown = (peak[0] - before) / (1 << 20)
        print("\nagent/silent watchers: 10 watchers over 100 000 chainlets: RSS grew %.0f MiB "
              "(bound 300), %d ended RESOURCE_EXHAUSTED (after at most %d messages the "
              "client held), %d late ticks" %
              (grown, sum(c == grpc.StatusCode.RESOURCE_EXHAUSTED for c in ended),
               max(held), len(late)))
        print("agent/silent watchers: time and memory bounds %s" % BOUNDS)
        self.assertEqual(ended, [grpc.StatusCode.RESOURCE_EXHAUSTED] * 10)
        if not SANITIZED:
            self.assertLess(grown, 300)
            self.assertEqual(late, [])


class MetricsTest(AgentFaultBase):
    def test_metrics_are_bounded_and_valid(self):
        names = create_chains(self.stub, 100, 500)
        agent, stub = self.start_agent()
        self.wait_applied(agent)
        report_everything(stub, 100, names, 2)
        url = "http://127.0.0.1:%d/metrics" % agent.http_port
        before = agent.rss_bytes()
        sizes = []
        errors = []

        def scrape():
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    sizes.append(len(response.read()))
            except Exception as e:  # noqa: BLE001 - any failure is what this test reports
                errors.append(str(e))
        peak = before
        threads = [threading.Thread(target=scrape) for _ in range(8)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            peak = max(peak, agent.rss_bytes())
            time.sleep(0.05)
        grown = (peak - before) / (1 << 20)
        with urllib.request.urlopen(url, timeout=60) as response:
            text = response.read().decode()
        promtool = shutil.which("promtool")
        verdict = "promtool not installed"
        if promtool:
            checked = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                                     capture_output=True)
            verdict = "promtool: exit %d %s" % (checked.returncode,
                                                (checked.stdout + checked.stderr).strip()[:300])
        print("\nagent/metrics: 8 parallel scrapes at 100 000 chainlets: %s bytes each, RSS "
              "grew %.0f MiB (bound 64), %s" % (sorted(set(sizes)), grown, verdict))
        self.assertEqual(errors, [])
        self.assertTrue(sizes and max(sizes) < 4 << 20, sizes)
        if not SANITIZED:
            self.assertLess(grown, 64)
        if promtool:
            self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)


class SmallerTest(AgentFaultBase):
    tried = 0
    held = 0

    @classmethod
    def tearDownClass(cls):
        print("\nagent/smaller: tried %d, held %d" % (cls.tried, cls.held))

    def check(self, condition, what):
        type(self).tried += 1
        self.assertTrue(condition, what)
        type(self).held += 1

    def test_report_and_read_paths_refuse_what_they_should(self):
        create_chains(self.stub, 1, 2)
        agent, stub = self.start_agent()
        self.wait_applied(agent)

        def report(source, chainlet="chainlet-000", chain="c000", env="production"):
            return agent_pb2.LoadReport(source_id=source, chain_id=chain, env_name=env,
                                        chainlet_name=chainlet, in_flight_requests=1)
        # A new source named twice in one batch is one source: with 9 999 sources known, at
        # the cap of 10 000 per chainlet, it still fits.
        stub.ReportLoad(agent_pb2.ReportLoadRequest(
            reports=[report("r%d" % i) for i in range(9_999)]), metadata=AUTH, timeout=TIMEOUT)
        try:
            stub.ReportLoad(agent_pb2.ReportLoadRequest(reports=[report("new"), report("new")]),
                            metadata=AUTH, timeout=TIMEOUT)
            repeated = "accepted"
        except grpc.RpcError as e:
            repeated = "%s: %s" % (e.code(), e.details())
        self.check(repeated == "accepted", "a repeated new source counts once: %s" % repeated)
        # A control character in a source id is refused, naming the field.
        with self.assertRaises(grpc.RpcError) as bad:
            stub.ReportLoad(agent_pb2.ReportLoadRequest(reports=[report("r\x1b[31m")]),
                            metadata=AUTH)
        self.check(bad.exception.code() == grpc.StatusCode.INVALID_ARGUMENT and
                   "source_id" in bad.exception.details(), bad.exception.details())
        # NUL inside a name never aliases another chainlet on a read path.
        with self.assertRaises(grpc.RpcError) as alias:
            stub.GetScalingDecision(agent_pb2.GetScalingDecisionRequest(
                chain_id="c000\x00production", env_name="", chainlet_name="chainlet-000"),
                metadata=AUTH)
        self.check(alias.exception.code() == grpc.StatusCode.INVALID_ARGUMENT,
                   "NUL in a chain id: %s" % alias.exception.code())
        # A StreamLoad message over the 10 000-report cap is refused whole.
        responses = list(stub.StreamLoad(iter([agent_pb2.StreamLoadRequest(
            sequence=1, reports=[report("r1")] * 10_001)]), metadata=AUTH))
        self.check(len(responses) == 1 and responses[0].accepted == 0 and
                   responses[0].rejections and
                   responses[0].rejections[0].code == grpc.StatusCode.INVALID_ARGUMENT.value[0],
                   "an oversized StreamLoad batch is refused: %s" % (responses[:1],))


if __name__ == "__main__":
    unittest.main()
