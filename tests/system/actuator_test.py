"""chainscale-actuator with the real binaries: control plane, agent and actuator as
processes, the actuator's process backend running real replicas (python3 -m http.server on
a loopback port of its own, {port}).

- Load of 3 in flight at 1 per replica: the decision goes 0 to 3 and three replica processes
  run, each serving HTTP on its own port; /metrics says 3 desired and 3 running.
- SIGKILL the actuator and start it again: the same three pids are adopted (the state
  directory, checked against /proc start times), none is killed or started.
- Load gone: after the scale-down delay the count goes down one step at a time to 0,
  the newest replica (highest serial) first.
- A target whose command does not exist is retried with backoff and shown on /metrics
  (backend_up 0, failures counted) while the actuator keeps running.
- /metrics passes promtool check metrics (when promtool is installed); /healthz answers.
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

sys.path.insert(0, os.path.dirname(__file__))
from chainscale_process import Actuator, Agent, ControlPlane, wait_for  # noqa: E402
from google.protobuf import json_format  # noqa: E402
from chainscale.v1 import agent_pb2  # noqa: E402
from chainscale.v1 import agent_pb2_grpc  # noqa: E402
from chainscale.v1 import control_plane_pb2 as cp  # noqa: E402
from chainscale.v1 import control_plane_pb2_grpc as cp_grpc  # noqa: E402

API_KEY = "actuator-key"
TOKEN = "actuator-agent-token"
AUTH = (("authorization", "Api-Key " + API_KEY),)
TIMEOUT = 20
CHAIN = "act"
STATE_NAME = "act.production.Worker"


def proc_start_ticks(pid):
    """The start time of a live (not zombie) process, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


class Reporter:
    """Reports a chosen in-flight count per chainlet to the agent every 200 ms, as a
    replica's reporter would (0 when idle: silence is not zero)."""

    def __init__(self, address):
        self.channel = grpc.insecure_channel(address)
        self.stub = agent_pb2_grpc.AgentStub(self.channel)
        self.load = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def set(self, chainlet, in_flight):
        with self.lock:
            self.load[chainlet] = in_flight

    def _run(self):
        while not self.stop.wait(0.2):
            with self.lock:
                reports = [agent_pb2.LoadReport(source_id="reporter-" + name, chain_id=CHAIN,
                                                env_name="production", chainlet_name=name,
                                                in_flight_requests=value)
                           for name, value in self.load.items()]
            if not reports:
                continue
            try:
                self.stub.ReportLoad(agent_pb2.ReportLoadRequest(reports=reports),
                                     metadata=AUTH, timeout=5)
            except grpc.RpcError:
                pass  # the agent may be busy starting; the next round reports again

    def close(self):
        self.stop.set()
        self.thread.join(timeout=10)
        self.channel.close()


class ActuatorSystemTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.state_dir = os.path.join(self.dir.name, "state")
        self.www = os.path.join(self.dir.name, "www")
        os.makedirs(self.www)
        with open(os.path.join(self.www, "index.html"), "w") as f:
            f.write("replica\n")
        self.cp = ControlPlane(os.environ["CHAINSCALE_CONTROL_PLANE"],
                               os.path.join(self.dir.name, "cp"), API_KEY, agent_token=TOKEN)
        self.agent = None
        self.actuator = None
        self.reporter = None
        self.cp.start()
        self.addCleanup(self.cleanup)
        with grpc.insecure_channel(self.cp.address) as channel:
            stub = cp_grpc.ControlPlaneStub(channel)
            stub.CreateChain(cp.CreateChainRequest(chain_id=CHAIN,
                                                   chainlet_names=["Worker", "Broken"]),
                             metadata=AUTH, timeout=TIMEOUT)
            settings = {"min_replica": 0, "max_replica": 4, "concurrency_target": 1,
                        "target_utilization_percentage": 100, "autoscaling_window": 10,
                        "scale_down_delay": 1, "max_scale_down_rate": 50}
            stub.UpdateChainletEnvironmentAutoscalingSettings(json_format.ParseDict({
                "chain_id": CHAIN, "env_name": "production", "updates": [
                    {"chainlet_name": "Worker", "autoscaling_settings": settings},
                    {"chainlet_name": "Broken", "autoscaling_settings": settings}]},
                cp.UpdateChainletEnvironmentAutoscalingSettingsRequest()),
                metadata=AUTH, timeout=TIMEOUT)
        self.agent = Agent(os.environ["CHAINSCALE_AGENT"], self.cp.address, API_KEY, TOKEN,
                           ["--agent_id=actuator-agent", "--decision_interval=100ms",
                            "--report_staleness=2s", "--selector=%s/production" % CHAIN])
        self.agent.start()
        self.reporter = Reporter(self.agent.address)

    def cleanup(self):
        if self.reporter is not None:
            self.reporter.close()
        if self.actuator is not None:
            self.actuator.kill()
        # Replicas outlive the actuator by design: end what is left of them.
        for pid, ticks, _ in self.records():
            if proc_start_ticks(pid) == ticks:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.agent is not None:
            self.agent.kill()
        self.cp.kill()
        self.dir.cleanup()

    def start_actuator(self):
        command = ("python3 -m http.server --bind 127.0.0.1 --directory %s {port}" % self.www)
        self.actuator = Actuator(os.environ["CHAINSCALE_ACTUATOR"], self.cp.address, API_KEY, [
            "--target=%s/production/Worker=process:%s" % (CHAIN, command),
            "--target=%s/production/Broken=process:chainscale-no-such-command {port}" % CHAIN,
            "--state_dir=" + self.state_dir, "--drain_period=5s", "--resync_interval=200ms"])
        self.actuator.start()

    def records(self):
        """(pid, start_ticks, port) of each Worker replica in the state file, in serial order."""
        try:
            with open(os.path.join(self.state_dir, STATE_NAME + ".replicas")) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            if line.startswith("#") or line.startswith("next_serial") or not line:
                continue
            serial, pid, ticks, _index, port, _command = line.split(" ", 5)
            out.append((int(pid), int(ticks), int(port)))
        return out

    def alive(self):
        """The recorded Worker replicas that are still the processes recorded."""
        return [pid for pid, ticks, _ in self.records() if proc_start_ticks(pid) == ticks]

    def sample(self, name, chainlet="Worker"):
        """One sample of the actuator's /metrics for a chainlet, or None."""
        pattern = r'^%s\{chain="%s",environment="production",chainlet="%s"[^}]*\} (\S+)$' % (
            name, CHAIN, chainlet)
        match = re.search(pattern, self.actuator.metrics(), re.M)
        return float(match.group(1)) if match else None

    def test_scales_up_survives_a_restart_and_scales_down_newest_first(self):
        self.start_actuator()
        self.assertEqual(self.actuator.healthz(), (200, "SERVING\n"))
        self.reporter.set("Worker", 3)
        self.reporter.set("Broken", 1)
        self.assertTrue(wait_for(lambda: len(self.alive()) == 3 and
                                 self.sample("chainscale_actuator_running_replicas") == 3,
                                 timeout=30),
                        "alive %s\n%s" % (self.alive(), "\n".join(self.actuator.log)))
        self.assertEqual(self.sample("chainscale_actuator_desired_replicas"), 3)
        self.assertEqual(self.sample("chainscale_actuator_max_replica"), 4)
        self.assertEqual(self.sample("chainscale_actuator_replica_starts_total"), 3)
        before = self.records()
        ports = sorted(port for _, _, port in before)
        self.assertEqual(len(set(ports)), 3)
        for port in ports:
            def answers(port=port):
                try:
                    with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=2) as r:
                        return r.read() == b"replica\n"
                except OSError:
                    return False
            self.assertTrue(wait_for(answers, timeout=15), "replica on port %d" % port)
        print("scaled up: pids %s on ports %s" % ([p for p, _, _ in before], ports))

        # The broken target: retried, shown, never a crash.
        self.assertTrue(wait_for(lambda: (self.sample("chainscale_actuator_backend_failures_total",
                                                      "Broken") or 0) >= 2, timeout=15))
        self.assertEqual(self.sample("chainscale_actuator_backend_up", "Broken"), 0)
        self.assertEqual(self.sample("chainscale_actuator_backend_up", "Worker"), 1)
        self.assertIsNone(self.actuator.proc.poll())
        self.assertTrue(any("command not found: chainscale-no-such-command" in line
                            for line in self.actuator.log))
        print("broken target: %d failed starts retried with backoff, actuator still running"
              % self.sample("chainscale_actuator_backend_failures_total", "Broken"))

        promtool = shutil.which("promtool")
        if promtool:
            checked = subprocess.run([promtool, "check", "metrics"], input=self.actuator.metrics(),
                                     text=True, capture_output=True, timeout=30)
            self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)
            print("promtool check metrics: clean")
        else:
            print("promtool not installed: metrics format not checked")

        # SIGKILL, then a new actuator: the same three processes, adopted.
        self.actuator.kill()
        self.assertEqual(self.alive(), [pid for pid, _, _ in before])
        self.start_actuator()
        self.assertTrue(wait_for(lambda: self.sample("chainscale_actuator_running_replicas") == 3
                                 and self.sample("chainscale_actuator_desired_replicas") == 3,
                                 timeout=30), "\n".join(self.actuator.log))
        self.assertEqual(self.records(), before)
        self.assertEqual(self.alive(), [pid for pid, _, _ in before])
        self.assertEqual(self.sample("chainscale_actuator_replica_starts_total"), 0)
        self.assertEqual(self.sample("chainscale_actuator_replica_stops_total"), 0)
        adopted = [line for line in self.actuator.log if 'msg="adopted replica"' in line and
                   "chainlet=act/production/Worker" in line]
        self.assertEqual(len(adopted), 3, "\n".join(self.actuator.log))
        print("restarted after SIGKILL: adopted %d replicas, started 0, none killed" % len(adopted))

        # Load gone: one step at a time, the newest first.
        self.reporter.set("Worker", 0)
        gone = []

        def step():
            now = self.alive()
            for pid, _, _ in before:
                if pid not in now and pid not in gone:
                    gone.append(pid)
            return not now
        self.assertTrue(wait_for(step, timeout=40, interval=0.05),
                        "gone %s\n%s" % (gone, "\n".join(self.actuator.log)))
        self.assertEqual(gone, [pid for pid, _, _ in reversed(before)])
        self.assertTrue(wait_for(lambda: self.sample("chainscale_actuator_replica_stops_total") == 3,
                                 timeout=15))
        self.assertEqual(self.sample("chainscale_actuator_desired_replicas"), 0)
        self.assertEqual(self.sample("chainscale_actuator_running_replicas"), 0)
        self.assertEqual(self.sample("chainscale_actuator_replica_kills_total"), 0)
        downs = [line for line in self.actuator.log if 'msg="scaling down"' in line and
                 "chainlet=act/production/Worker" in line]
        self.assertEqual(len(downs), 3, "\n".join(downs))
        print("scaled down in %d steps, stop order by pid %s (newest first)" % (len(downs), gone))
        self.assertEqual(self.sample("chainscale_actuator_backend_up", "Broken"), 0)
        self.assertIsNone(self.actuator.proc.poll())


if __name__ == "__main__":
    unittest.main()
