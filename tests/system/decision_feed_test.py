"""The control plane's decision feed and the console's chart history with the real
binaries: control plane, agent and load generator as processes.

- ControlPlane/WatchScalingDecisions sends the stored decisions (the initial state: 2
  replicas, stored for 10 requests in flight), marks its end, then each decision as the
  control plane stores it: an agent deciding 4 replicas for 25 requests in flight at
  concurrency 10 and 70 % utilization.
- A stream resumes after the last sequence it received; an unknown feed id gets the
  initial state again.
- GET /v1/console/chains/{chain}/environments/{env}/history?chainlet=NAME answers the
  chainlet's stored decisions as chart points.
- Unknown chains answer NOT_FOUND (404); a bad key is refused (UNAUTHENTICATED, 401).
- `chainscale --from=control-plane WatchScalingDecisions` prints the feed as JSON lines.
"""

import datetime
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

import grpc

sys.path.insert(0, os.path.dirname(__file__))
from chainscale_process import Agent, ControlPlane, create_chain, wait_for  # noqa: E402
from chainscale.v1 import control_plane_pb2 as cp  # noqa: E402
from chainscale.v1 import control_plane_pb2_grpc as cp_grpc  # noqa: E402

API_KEY = "feed-key"
TOKEN = "feed-agent-token"
AUTH = (("authorization", "Api-Key " + API_KEY),)
TIMEOUT = 20


class Feed:
    """Collects every message of one ControlPlane/WatchScalingDecisions stream."""

    def __init__(self, address, request, metadata=AUTH):
        self.channel = grpc.insecure_channel(address)
        self.call = cp_grpc.ControlPlaneStub(self.channel).WatchScalingDecisions(
            request, metadata=metadata)
        self.messages = []
        self.error = None
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for message in self.call:
                with self.lock:
                    self.messages.append(message)
        except grpc.RpcError as e:
            with self.lock:
                self.error = e

    def received(self):
        with self.lock:
            return list(self.messages)

    def ended_with(self):
        with self.lock:
            return self.error.code() if self.error is not None else None

    def close(self):
        self.call.cancel()
        self.thread.join(timeout=10)
        self.channel.close()


class DecisionFeedTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.cp = ControlPlane(os.environ["CHAINSCALE_CONTROL_PLANE"], cls.dir.name, API_KEY,
                              agent_token=TOKEN)
        cls.cp.start()
        cls.agent = None
        cls.loadgen = None
        try:
            with grpc.insecure_channel(cls.cp.address) as channel:
                create_chain(cp_grpc.ControlPlaneStub(channel), AUTH, "demo", "HelloWorld", {
                    "min_replica": 1, "max_replica": 10, "concurrency_target": 10,
                    "target_utilization_percentage": 70, "autoscaling_window": 10,
                    "scale_down_delay": 600}, timeout=TIMEOUT)
            cls.agent = Agent(os.environ["CHAINSCALE_AGENT"], cls.cp.address, API_KEY, TOKEN,
                              ["--agent_id=feed-agent", "--decision_interval=100ms",
                               "--report_staleness=2s", "--selector=demo/production"])
            cls.agent.start()
            # A first stored decision: 10 in flight at 7 per replica need 2 replicas (agents
            # store a decision when it changes).
            cls.start_load(10)
            if not wait_for(lambda: cls.stored_replicas() == 2, timeout=60):
                raise AssertionError("no decision stored: %s" % cls.stored_replicas())
            cls.stop_load()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.stop_load()
        if cls.agent is not None:
            cls.agent.kill()
        cls.cp.kill()
        cls.dir.cleanup()

    @classmethod
    def stored_replicas(cls):
        with grpc.insecure_channel(cls.cp.address) as channel:
            env = cp_grpc.ControlPlaneStub(channel).GetChainEnvironment(
                cp.GetChainEnvironmentRequest(chain_id="demo", env_name="production"),
                metadata=AUTH, timeout=TIMEOUT)
        d = env.chainlet_settings[0]
        return d.decision.desired_replicas if d.HasField("decision") else None

    @classmethod
    def start_load(cls, in_flight):
        cls.stop_load()
        cls.loadgen = subprocess.Popen(
            [os.environ["CHAINSCALE_LOADGEN"], "--agent=" + cls.agent.address,
             "--api_key=" + API_KEY, "--chain_id=demo", "--chainlets=HelloWorld",
             "--sources=1", "--pattern=constant:%d" % in_flight, "--report_interval=200ms",
             "--duration=5m"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @classmethod
    def stop_load(cls):
        if cls.loadgen is not None and cls.loadgen.poll() is None:
            cls.loadgen.send_signal(signal.SIGTERM)
            cls.loadgen.wait(timeout=10)
        cls.loadgen = None

    def history(self, chain, env, chainlet, key=API_KEY):
        url = "http://127.0.0.1:%d/v1/console/chains/%s/environments/%s/history?chainlet=%s" % (
            self.cp.http_port, chain, env, chainlet)
        request = urllib.request.Request(url, headers={"Authorization": "Api-Key " + key})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def first_error(self, request, metadata=AUTH):
        """The code a stream that should be refused ends with, within a deadline."""
        feed = Feed(self.cp.address, request, metadata)
        try:
            self.assertTrue(wait_for(lambda: feed.ended_with() is not None, timeout=TIMEOUT))
            self.assertEqual(feed.received(), [])
            return feed.ended_with()
        finally:
            feed.close()

    def test_initial_state_then_the_new_decision_then_resume(self):
        feed = Feed(self.cp.address, cp.WatchDecisionFeedRequest(chain_id="demo",
                                                                 env_name="production"))
        try:
            self.assertTrue(wait_for(lambda: any(m.initial_state_done for m in feed.received()),
                                     timeout=TIMEOUT), feed.received())
            initial = feed.received()
            marker = [m for m in initial if m.initial_state_done]
            self.assertEqual(len(marker), 1)
            before = initial[:initial.index(marker[0])]
            self.assertEqual([(m.decision.chainlet_name, m.decision.desired_replicas)
                              for m in before], [("HelloWorld", 2)])
            self.assertFalse(marker[0].HasField("decision"))
            self.assertFalse(marker[0].resumed)
            feed_id = marker[0].feed_id
            self.assertNotEqual(feed_id, "")
            print("initial state: %d decision(s), marker at sequence %d of feed %s"
                  % (len(before), marker[0].sequence, feed_id))

            # The chart history keeps one point per second: the next decision a second on.
            stored_at = before[0].decision.decided_at.ToMicroseconds() / 1e6
            self.assertTrue(wait_for(lambda: time.time() > stored_at + 1.2, timeout=5))
            self.start_load(25)
            self.assertTrue(wait_for(
                lambda: any(m.decision.desired_replicas == 4 for m in feed.received()),
                timeout=60), [m.decision.desired_replicas for m in feed.received()])
            live = feed.received()[len(initial):]
            four = next(m for m in live if m.decision.desired_replicas == 4)
            self.assertEqual(four.decision.agent_id, "feed-agent")
            self.assertEqual(four.decision.chain_id, "demo")
            self.assertEqual(four.feed_id, feed_id)
            sequences = [m.sequence for m in live]
            self.assertEqual(sequences, sorted(set(sequences)), "sequences grow")
            self.assertGreater(sequences[0], marker[0].sequence)
            print("live: %d decision(s), 4 replicas at sequence %d"
                  % (len(live), four.sequence))
        finally:
            self.stop_load()
            feed.close()

        # Resuming after the last message: only what was stored since, nothing again.
        last = feed.received()[-1]
        resumed = Feed(self.cp.address, cp.WatchDecisionFeedRequest(
            chain_id="demo", feed_id=feed_id, resume_after=last.sequence))
        try:
            self.assertTrue(wait_for(lambda: len(resumed.received()) >= 1, timeout=TIMEOUT))
            first = resumed.received()[0]
            self.assertTrue(first.initial_state_done)
            self.assertTrue(first.resumed)
            self.assertEqual(first.sequence, last.sequence)
        finally:
            resumed.close()
        # Another feed's sequence: the initial state again, with the latest decision.
        again = Feed(self.cp.address, cp.WatchDecisionFeedRequest(
            feed_id="another-feed", resume_after=last.sequence))
        try:
            self.assertTrue(wait_for(lambda: any(m.initial_state_done for m in again.received()),
                                     timeout=TIMEOUT))
            messages = again.received()
            self.assertFalse(messages[0].resumed)
            self.assertEqual(messages[0].decision.chainlet_name, "HelloWorld")
            self.assertEqual(messages[0].decision.desired_replicas, 4)
        finally:
            again.close()

        # The console's history holds the points, the latest with 4 replicas.
        status, body = self.history("demo", "production", "HelloWorld")
        self.assertEqual(status, 200, body)
        points = body["points"]
        self.assertGreaterEqual(len(points), 2, points)
        self.assertEqual(points[0]["desired_replicas"], 2)
        self.assertEqual(points[-1]["desired_replicas"], 4)
        # 4 replicas when the window's average passed 3 x 7 = 21 requests per replica.
        four = [p for p in points if p["desired_replicas"] == 4]
        self.assertGreater(four[0]["avg_in_flight_requests"], 21, points)
        self.assertLessEqual(four[0]["avg_in_flight_requests"], 25, points)
        times = [datetime.datetime.fromisoformat(p["time"].replace("Z", "+00:00"))
                 for p in points]
        self.assertEqual(times, sorted(times))
        print("history: %d points, last %s" % (len(points), points[-1]))

    def test_unknown_names_and_bad_keys_are_refused(self):
        self.assertEqual(self.first_error(cp.WatchDecisionFeedRequest(chain_id="nope")),
                         grpc.StatusCode.NOT_FOUND)
        self.assertEqual(self.first_error(cp.WatchDecisionFeedRequest(
            chain_id="demo", env_name="staging")), grpc.StatusCode.NOT_FOUND)
        self.assertEqual(self.first_error(cp.WatchDecisionFeedRequest(env_name="production")),
                         grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(self.first_error(cp.WatchDecisionFeedRequest(chain_id="Not Valid")),
                         grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(self.first_error(cp.WatchDecisionFeedRequest(),
                                          (("authorization", "Api-Key wrong"),)),
                         grpc.StatusCode.UNAUTHENTICATED)
        self.assertEqual(self.first_error(cp.WatchDecisionFeedRequest(), ()),
                         grpc.StatusCode.UNAUTHENTICATED)

        status, body = self.history("nope", "production", "HelloWorld")
        self.assertEqual((status, body["error"]["code"]), (404, "NOT_FOUND"))
        status, body = self.history("demo", "production", "Missing")
        self.assertEqual((status, body["error"]["code"]), (404, "NOT_FOUND"))
        status, body = self.history("demo", "production", "HelloWorld", key="wrong")
        self.assertEqual((status, body["error"]["code"]), (401, "UNAUTHENTICATED"))

    def test_cli_prints_the_control_plane_feed(self):
        cli = subprocess.Popen(
            [os.environ["CHAINSCALE_CLI"], "--from=control-plane",
             "--control_plane=" + self.cp.address, "--api_key=" + API_KEY,
             "WatchScalingDecisions", '{"chain_id": "demo"}'],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        lines = []
        try:
            deadline = time.monotonic() + TIMEOUT
            buffered = b""
            while time.monotonic() < deadline and not any(
                    json.loads(line).get("initial_state_done") for line in lines):
                ready, _, _ = select.select([cli.stdout], [], [], 0.5)
                if not ready:
                    continue
                chunk = os.read(cli.stdout.fileno(), 65536)
                if not chunk:
                    break
                buffered += chunk
                *complete, buffered = buffered.split(b"\n")
                lines.extend(line.decode() for line in complete if line)
        finally:
            cli.send_signal(signal.SIGTERM)
            code = cli.wait(timeout=10)
            stderr = cli.stderr.read()
            cli.stdout.close()
            cli.stderr.close()
        messages = [json.loads(line) for line in lines]
        self.assertEqual(code, 0, stderr)
        self.assertEqual(messages[0]["decision"]["chainlet_name"], "HelloWorld")
        self.assertTrue(messages[-1]["initial_state_done"])
        print("chainscale --from=control-plane printed %d line(s)" % len(messages))


if __name__ == "__main__":
    unittest.main()
