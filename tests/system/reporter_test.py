"""System test of chainscale-reporter with the real binaries: a control plane, an agent
(decisions every 100 ms, reports stale after 2 s) and reporters scraping fake vLLM
/metrics pages that the test serves with http.server on port 0 and changes as it goes.

Each chainlet has concurrency_target 2 at 80 % utilization: 1.6 requests per replica.

- running 3 + waiting 5 is 8 in flight: 5 replicas; then 10 + 6 = 16: 10 replicas.
- vllm:num_requests_waiting removed from the page: the reporter counts missing_metric
  scrapes on its /metrics, logs one line naming the metric and the URL, sends nothing;
  the agent then ages the source out and holds the count (no_reports).
- the first of --agents unreachable: reports arrive through the second.
"""

import http.server
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import unittest
import urllib.request

import grpc
from google.protobuf import json_format

sys.path.insert(0, os.path.dirname(__file__))
from chainscale_process import Agent, ControlPlane, Reporter, wait_for  # noqa: E402
from chainscale.v1 import agent_pb2, agent_pb2_grpc  # noqa: E402
from chainscale.v1 import control_plane_pb2 as cp  # noqa: E402
from chainscale.v1 import control_plane_pb2_grpc as cp_grpc  # noqa: E402

API_KEY = "reporter-system-key"
TOKEN = "reporter-system-agent-token"
AUTH = (("authorization", "Api-Key " + API_KEY),)
TIMEOUT = 20
CHAINLETS = ["Follow", "Missing", "Failover"]
SETTINGS = {"min_replica": 0, "max_replica": 20, "concurrency_target": 2,
            "target_utilization_percentage": 80, "autoscaling_window": 10,
            "scale_down_delay": 60}
RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"


class FakeVllm:
    """A /metrics page shaped like vLLM's; set() and remove() change what it serves."""

    def __init__(self, running, waiting):
        self.lock = threading.Lock()
        self.values = {RUNNING: running, WAITING: waiting}
        self.scrapes = 0
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = fake.page().encode()
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d/metrics" % self.server.server_address[1]

    def page(self):
        with self.lock:
            self.scrapes += 1
            lines = ["# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig",
                     "# TYPE vllm:cache_config_info gauge",
                     'vllm:cache_config_info{block_size="16",cache_dtype="auto"} 1.0']
            for name, value in self.values.items():
                lines += ["# HELP %s gauge of the scheduler" % name, "# TYPE %s gauge" % name,
                          '%s{model_name="meta-llama/Llama-3.1-8B"} %.1f' % (name, value)]
            lines += ["# TYPE vllm:e2e_request_latency_seconds histogram",
                      'vllm:e2e_request_latency_seconds_bucket{le="+Inf",model_name="m"} 4.0',
                      'vllm:e2e_request_latency_seconds_count{model_name="m"} 4.0',
                      'vllm:e2e_request_latency_seconds_sum{model_name="m"} 2.5']
            return "\n".join(lines) + "\n"

    def set(self, running, waiting):
        with self.lock:
            self.values = {RUNNING: running, WAITING: waiting}

    def remove(self, name):
        with self.lock:
            del self.values[name]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def metric(text, series):
    """The value of one series in a /metrics page; None when absent."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


class ReporterSystemTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.cp = ControlPlane(os.environ["CHAINSCALE_CONTROL_PLANE"], cls.dir.name, API_KEY,
                              agent_token=TOKEN)
        cls.agent = None
        try:
            cls.cp.start()
            with grpc.insecure_channel(cls.cp.address) as channel:
                stub = cp_grpc.ControlPlaneStub(channel)
                stub.CreateChain(cp.CreateChainRequest(chain_id="demo", chainlet_names=CHAINLETS),
                                 metadata=AUTH, timeout=TIMEOUT)
                stub.UpdateChainletEnvironmentAutoscalingSettings(json_format.ParseDict(
                    {"chain_id": "demo", "env_name": "production",
                     "updates": [{"chainlet_name": c, "autoscaling_settings": SETTINGS}
                                 for c in CHAINLETS]},
                    cp.UpdateChainletEnvironmentAutoscalingSettingsRequest()),
                    metadata=AUTH, timeout=TIMEOUT)
            cls.agent = Agent(os.environ["CHAINSCALE_AGENT"], cls.cp.address, API_KEY, TOKEN,
                              ["--agent_id=reporter-system-agent", "--decision_interval=100ms",
                               "--report_staleness=2s"])
            cls.agent.start()
            cls.channel = grpc.insecure_channel(cls.agent.address)
            cls.stub = agent_pb2_grpc.AgentStub(cls.channel)
            # The agent owns the environment (its decisions exist) before reporters start.
            assert wait_for(lambda: all(cls.decision(c) is not None for c in CHAINLETS), 30)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for process in (cls.agent, cls.cp):
            if process:
                process.kill()
        cls.dir.cleanup()

    @classmethod
    def decision(cls, chainlet):
        try:
            return cls.stub.GetScalingDecision(
                agent_pb2.GetScalingDecisionRequest(chain_id="demo", env_name="production",
                                                    chainlet_name=chainlet),
                metadata=AUTH, timeout=TIMEOUT)
        except grpc.RpcError:
            return None

    def setUp(self):
        self.cleanups = []

    def tearDown(self):
        for cleanup in reversed(self.cleanups):
            cleanup()

    def serve(self, running, waiting):
        fake = FakeVllm(running, waiting)
        self.cleanups.append(fake.close)
        return fake

    def start_reporter(self, fake, chainlet, agents):
        reporter = Reporter(os.environ["CHAINSCALE_REPORTER"], [
            "--scrape_url=" + fake.url, "--preset=vllm", "--interval=200ms",
            "--chain_id=demo", "--chainlet_name=" + chainlet,
            "--source_id=%s-replica-0" % chainlet.lower(), "--agents=" + ",".join(agents)],
            API_KEY)
        reporter.start()
        self.cleanups.append(reporter.kill)
        return reporter

    def wait_desired(self, chainlet, replicas, timeout=30):
        ok = wait_for(lambda: self.decision(chainlet).desired_replicas == replicas, timeout)
        self.assertTrue(ok, "wanted %d replicas, decision: %s" % (replicas, self.decision(chainlet)))

    def test_the_decision_follows_the_scraped_value(self):
        fake = self.serve(running=3, waiting=5)
        reporter = self.start_reporter(fake, "Follow", [self.agent.address])
        # 8 in flight at 1.6 per replica: ceil(5) = 5.
        self.wait_desired("Follow", 5)
        decision = self.decision("Follow")
        self.assertEqual(decision.avg_in_flight_requests, 8)
        self.assertFalse(decision.capped)
        agent_metrics = self.agent.metrics()
        self.assertEqual(metric(agent_metrics, 'chainscale_concurrent_requests{chain="demo",'
                                               'environment="production",chainlet="Follow"}'), 8)

        fake.set(running=10, waiting=6)
        # 16 in flight: 10 replicas once the window's average passes 14.4.
        self.wait_desired("Follow", 10)
        self.assertTrue(wait_for(lambda: self.decision("Follow").avg_in_flight_requests == 16,
                                 timeout=30))
        text = reporter.metrics()
        self.assertEqual(metric(text, "chainscale_reporter_in_flight_requests"), 16)
        self.assertEqual(metric(text, "chainscale_reporter_last_scrape_ok"), 1)
        self.assertEqual(metric(text, 'chainscale_reporter_scrapes_total{result="missing_metric"}'), 0)
        self.assertGreater(metric(text, "chainscale_reporter_reports_accepted_total"), 0)
        self.assertEqual(metric(text, "chainscale_reporter_reports_rejected_total"), 0)
        self.assertEqual(metric(text, "chainscale_reporter_stream_connected"), 1)
        print("follow: %d scrapes, %d reports accepted, decision %d replicas at %.1f in flight"
              % (metric(text, 'chainscale_reporter_scrapes_total{result="ok"}'),
                 metric(text, "chainscale_reporter_reports_accepted_total"),
                 self.decision("Follow").desired_replicas,
                 self.decision("Follow").avg_in_flight_requests))
        with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % reporter.http_port,
                                    timeout=5) as response:
            self.assertEqual((response.status, response.read()), (200, b"SERVING\n"))
        promtool = shutil.which("promtool")
        if promtool:
            checked = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                                     capture_output=True, timeout=30)
            self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)

    def test_a_missing_metric_is_counted_logged_once_and_not_reported(self):
        fake = self.serve(running=3, waiting=5)
        reporter = self.start_reporter(fake, "Missing", [self.agent.address])
        self.wait_desired("Missing", 5)

        fake.remove(WAITING)
        missing = 'chainscale_reporter_scrapes_total{result="missing_metric"}'
        self.assertTrue(wait_for(lambda: (metric(reporter.metrics(), missing) or 0) >= 3))
        text = reporter.metrics()
        sent = metric(text, "chainscale_reporter_reports_sent_total")
        seen = metric(text, missing)
        self.assertEqual(metric(text, "chainscale_reporter_last_scrape_ok"), 0)
        # Three more missing scrapes: nothing more is sent, and still one log line.
        self.assertTrue(wait_for(lambda: metric(reporter.metrics(), missing) >= seen + 3))
        self.assertEqual(metric(reporter.metrics(), "chainscale_reporter_reports_sent_total"),
                         sent)
        lines = [line for line in reporter.log if "result=missing_metric" in line]
        self.assertEqual(len(lines), 1, "\n".join(reporter.log))
        self.assertIn(WAITING, lines[0])
        self.assertIn(fake.url, lines[0])
        # The agent ages the silent source out and holds the count rather than draining.
        self.assertTrue(wait_for(lambda: self.decision("Missing").no_reports, timeout=15),
                        self.decision("Missing"))
        self.assertEqual(self.decision("Missing").desired_replicas, 5)

        fake.set(running=1, waiting=0)
        self.assertTrue(wait_for(lambda: metric(reporter.metrics(),
                                                "chainscale_reporter_last_scrape_ok") == 1))
        self.assertTrue(wait_for(lambda: not self.decision("Missing").no_reports, timeout=15))
        print("missing metric: %d scrapes counted, %d reports sent before it went, 1 log line"
              % (metric(reporter.metrics(), missing), sent))

    def test_reports_arrive_through_the_second_agent_when_the_first_is_unreachable(self):
        # A port where nothing listens: bound, then closed.
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        closed = "127.0.0.1:%d" % probe.getsockname()[1]
        probe.close()
        fake = self.serve(running=3, waiting=5)
        reporter = self.start_reporter(fake, "Failover", [closed, self.agent.address])
        self.wait_desired("Failover", 5)
        text = reporter.metrics()
        self.assertGreater(metric(text, "chainscale_reporter_reports_accepted_total"), 0)
        self.assertGreaterEqual(metric(text, "chainscale_reporter_stream_reconnects_total"), 1)
        ended = [line for line in reporter.log if "report stream ended" in line]
        self.assertTrue(any(closed in line for line in ended), "\n".join(reporter.log))
        opened = [line for line in reporter.log if "report stream open" in line]
        self.assertIn(self.agent.address, opened[-1])
        print("failover: first agent %s unreachable, %d reports accepted by %s"
              % (closed, metric(text, "chainscale_reporter_reports_accepted_total"),
                 self.agent.address))


if __name__ == "__main__":
    unittest.main()
