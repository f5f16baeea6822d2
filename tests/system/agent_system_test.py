"""System test of the documented behaviour with the real binaries: control plane, agent
and load generator as processes, short settings (window 10 s, delay 2 s, decisions every
100 ms).

- 25 requests in flight at concurrency 10 and 70 % utilization: 4 replicas.
- Load removed: QUEUED while the delay runs, then steps that each remove at most half,
  a whole delay apart, down to min_replica 0.
- The agent killed and restarted while at 4 replicas with no load: it resumes from the
  stored decision and does not drop replicas during its warm-up window.
"""

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc
from google.protobuf import json_format

sys.path.insert(0, os.path.dirname(__file__))
from chainscale_process import Agent, ControlPlane, wait_for  # noqa: E402
from chainscale.v1 import agent_pb2, agent_pb2_grpc  # noqa: E402
from chainscale.v1 import control_plane_pb2 as cp  # noqa: E402
from chainscale.v1 import control_plane_pb2_grpc as cp_grpc  # noqa: E402
from chainscale.v1 import settings_pb2  # noqa: E402

API_KEY = "system-key"
TOKEN = "system-agent-token"
AUTH = (("authorization", "Api-Key " + API_KEY),)
TIMEOUT = 20
WINDOW, DELAY = 10, 2
ACCEPTED = settings_pb2.ScalingDecision.ACCEPTED
QUEUED = settings_pb2.ScalingDecision.QUEUED


class Watch:
    """Collects every decision an agent's WatchScalingDecisions stream sends."""

    def __init__(self, address):
        self.channel = grpc.insecure_channel(address)
        self.stub = agent_pb2_grpc.AgentStub(self.channel)
        self.decisions = []  # (time received, decision)
        self.lock = threading.Lock()
        self.call = self.stub.WatchScalingDecisions(
            agent_pb2.WatchScalingDecisionsRequest(chain_id="demo", env_name="production"),
            metadata=AUTH)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for decision in self.call:
                with self.lock:
                    self.decisions.append((time.monotonic(), decision))
        except grpc.RpcError:
            pass

    def since(self, t):
        with self.lock:
            return [d for (at, d) in self.decisions if at >= t]

    def latest(self):
        with self.lock:
            return self.decisions[-1][1] if self.decisions else None

    def close(self):
        self.call.cancel()
        self.thread.join(timeout=10)
        self.channel.close()


class AgentSystemTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.processes = []
        self.cp = ControlPlane(os.environ["CHAINSCALE_CONTROL_PLANE"], self.dir.name, API_KEY,
                               agent_token=TOKEN)
        self.cp.start()
        self.processes.append(self.cp)
        with grpc.insecure_channel(self.cp.address) as channel:
            stub = cp_grpc.ControlPlaneStub(channel)
            stub.CreateChain(cp.CreateChainRequest(chain_id="demo",
                                                   chainlet_names=["HelloWorld"]),
                             metadata=AUTH, timeout=TIMEOUT)
            stub.UpdateChainletEnvironmentAutoscalingSettings(
                json_format.ParseDict({
                    "chain_id": "demo", "env_name": "production",
                    "updates": [{"chainlet_name": "HelloWorld", "autoscaling_settings": {
                        "min_replica": 0, "max_replica": 10, "concurrency_target": 10,
                        "target_utilization_percentage": 70, "autoscaling_window": WINDOW,
                        "scale_down_delay": DELAY}}]},
                    cp.UpdateChainletEnvironmentAutoscalingSettingsRequest()),
                metadata=AUTH, timeout=TIMEOUT)
        self.loadgen = None

    def tearDown(self):
        self.stop_load()
        for process in self.processes:
            process.kill()
        self.dir.cleanup()

    def start_agent(self):
        agent = Agent(os.environ["CHAINSCALE_AGENT"], self.cp.address, API_KEY, TOKEN,
                      ["--agent_id=system-agent", "--decision_interval=100ms",
                       "--report_staleness=2s", "--selector=demo/production"])
        agent.start()
        self.processes.append(agent)
        stub = agent_pb2_grpc.AgentStub(grpc.insecure_channel(agent.address))
        self.assertTrue(wait_for(lambda: self.decision(stub) is not None))
        return agent, stub

    def decision(self, stub):
        try:
            return stub.GetScalingDecision(
                agent_pb2.GetScalingDecisionRequest(chain_id="demo", env_name="production",
                                                    chainlet_name="HelloWorld"),
                metadata=AUTH, timeout=TIMEOUT)
        except grpc.RpcError:
            return None

    def start_load(self, agent, in_flight):
        self.loadgen = subprocess.Popen(
            [os.environ["CHAINSCALE_LOADGEN"], "--agent=" + agent.address,
             "--api_key=" + API_KEY, "--chain_id=demo", "--chainlets=HelloWorld",
             "--sources=1", "--pattern=constant:%d" % in_flight, "--report_interval=200ms",
             "--duration=5m"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def stop_load(self):
        if self.loadgen and self.loadgen.poll() is None:
            self.loadgen.send_signal(signal.SIGTERM)
            self.loadgen.wait(timeout=10)
        self.loadgen = None

    def stored_decision(self):
        with grpc.insecure_channel(self.cp.address) as channel:
            env = cp_grpc.ControlPlaneStub(channel).GetChainEnvironment(
                cp.GetChainEnvironmentRequest(chain_id="demo", env_name="production"),
                metadata=AUTH, timeout=TIMEOUT)
            return env.chainlet_settings[0].decision

    def test_a_watch_on_a_new_chain_hears_each_decision_once(self):
        # A watch opened right after a chain is created, on a running agent: the starting
        # point once, then nothing while the count holds (no repeat of the same count),
        # and no talk of a stored decision where none was stored.
        agent, stub = self.start_agent()
        with grpc.insecure_channel(self.cp.address) as channel:
            control = cp_grpc.ControlPlaneStub(channel)
            control.DeleteChain(cp.DeleteChainRequest(chain_id="demo"), metadata=AUTH,
                                timeout=TIMEOUT)
            control.CreateChain(cp.CreateChainRequest(chain_id="demo",
                                                      chainlet_names=["HelloWorld"]),
                                metadata=AUTH, timeout=TIMEOUT)
        watch = Watch(agent.address)
        try:
            self.assertTrue(wait_for(lambda: watch.latest() is not None))
            first = self.decision(stub).decided_at.ToNanoseconds()
            # Twenty ticks of 100 ms with no load: the decision is held all along.
            self.assertTrue(wait_for(
                lambda: self.decision(stub).decided_at.ToNanoseconds() >= first + 2 * 10**9,
                timeout=30))
            heard = watch.since(0)
        finally:
            watch.close()
        self.assertEqual(len(heard), 1, [(d.desired_replicas, d.status, d.reason)
                                         for d in heard])
        self.assertEqual(heard[0].desired_replicas, 0)
        self.assertNotIn("stored decision", heard[0].reason)

    def test_scale_up_then_capped_delayed_steps_down_to_zero(self):
        agent, stub = self.start_agent()
        watch = Watch(agent.address)
        try:
            self.start_load(agent, 25)
            self.assertTrue(wait_for(lambda: self.decision(stub).desired_replicas == 4),
                            self.decision(stub))
            self.assertEqual(self.decision(stub).replicas_for_load, 4)
            # Decisions reach the control plane.
            self.assertTrue(wait_for(lambda: self.stored_decision().desired_replicas == 4))

            # The replica goes idle and says so (silence would hold the count).
            self.stop_load()
            removed = time.monotonic()
            self.start_load(agent, 0)
            self.assertTrue(wait_for(lambda: self.decision(stub).desired_replicas == 0,
                                     timeout=90))
            # The watch stream delivers the same decision a moment later.
            self.assertTrue(wait_for(lambda: watch.latest().desired_replicas == 0))
            after = watch.since(removed)
            steps = [d for d in after if d.status == ACCEPTED]
            self.assertTrue(any(d.status == QUEUED for d in after), "QUEUED while waiting")
            previous = 4
            for step in steps:
                self.assertEqual(step.previous_replicas, previous)
                self.assertLess(step.desired_replicas, previous)
                # At most half of the running replicas go in one step (at least one).
                self.assertGreaterEqual(step.desired_replicas,
                                        previous - max(1, previous // 2), step)
                previous = step.desired_replicas
            self.assertEqual(previous, 0)
            self.assertGreaterEqual(len(steps), 3)
            # Each step down waited a whole delay since its scale-down became pending (the
            # QUEUED decision before it carries that time; on a slow machine the load can
            # dip, and the wait begin, before the load generator is stopped).
            pending_since = None
            for d in watch.since(0):
                if d.status == QUEUED:
                    pending_since = d.scale_down_pending_since.ToNanoseconds()
                elif d.status == ACCEPTED and d.desired_replicas < d.previous_replicas:
                    self.assertIsNotNone(pending_since, "a step without a wait: %s" % d)
                    waited = d.decided_at.ToNanoseconds() - pending_since
                    # On the decision schedule: up to half the 100 ms interval early.
                    self.assertGreaterEqual(waited, DELAY * 1e9 - 50e6, d)
                    pending_since = None
                else:
                    pending_since = None
        finally:
            watch.close()

    def test_restarted_agent_resumes_from_the_stored_decision_and_holds_in_warm_up(self):
        agent, stub = self.start_agent()
        self.start_load(agent, 25)
        self.assertTrue(wait_for(lambda: self.decision(stub).desired_replicas == 4))
        self.assertTrue(wait_for(lambda: self.stored_decision().desired_replicas == 4))
        self.stop_load()
        agent.kill()

        agent, stub = self.start_agent()
        watch = Watch(agent.address)
        try:
            first = self.decision(stub)
            self.assertEqual(first.desired_replicas, 4, "starts from the stored decision")
            # Nobody reports: silence is not zero load, so the count holds, saying why.
            self.assertTrue(wait_for(lambda: self.decision(stub).no_reports, timeout=30),
                            self.decision(stub))
            self.assertEqual(self.decision(stub).desired_replicas, 4)
            # The replica reports that it is idle: within its first window of reports the
            # agent must still hold 4, then it steps down.
            started = time.monotonic()
            self.start_load(agent, 0)
            self.assertTrue(wait_for(lambda: watch.latest() is not None
                                     and watch.latest().desired_replicas < 4, timeout=60))
            # Warm-up counts whole seconds with a live source; the first of them may have
            # had the source for a moment only, so it ends up to a second early.
            for at, decision in [(at, d) for (at, d) in watch.decisions]:
                if at - started < WINDOW - 1.0:
                    self.assertEqual(decision.desired_replicas, 4,
                                     "dropped during warm-up after %.1f s" % (at - started))
            dropped = [at for (at, d) in watch.decisions if d.desired_replicas < 4][0]
            self.assertGreaterEqual(dropped - started, WINDOW - 1.0)
        finally:
            watch.close()


if __name__ == "__main__":
    unittest.main()
