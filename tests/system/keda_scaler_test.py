"""The control plane as KEDA's external scaler, called as KEDA calls it: the real control
plane and agent as processes, a client generated from proto/externalscaler, the key in
the trigger's metadata (KEDA sends no gRPC headers of its own).

- GetMetricSpec: one metric named after the chainlet, target 1.
- A chainlet at zero (min_replica 0, no decision yet): IsActive false, GetMetrics 0, and
  StreamIsActive sends false at once. A report of 25 requests in flight (concurrency 10,
  70 % utilization) starts it from zero: the stream pushes true, GetMetrics answers 4
  and IsActive true.
- Errors: an unknown chainlet NOT_FOUND naming it, a missing chainlet_name
  INVALID_ARGUMENT naming the key, a wrong or missing key UNAUTHENTICATED; the key is
  also taken from `api_keyFromEnv` (as KEDA resolves it) and the authorization header.
- The README's ScaledObject: its trigger's metadata, as KEDA passes it, is what the
  control plane reads.
"""

import os
import re
import sys
import tempfile
import threading
import time
import unittest

import grpc

sys.path.insert(0, os.path.dirname(__file__))
from chainscale_process import Agent, ControlPlane, create_chain, wait_for  # noqa: E402
from chainscale.v1 import agent_pb2, agent_pb2_grpc  # noqa: E402
from chainscale.v1 import control_plane_pb2_grpc as cp_grpc  # noqa: E402
from externalscaler import externalscaler_pb2 as es  # noqa: E402
from externalscaler import externalscaler_pb2_grpc as es_grpc  # noqa: E402

API_KEY = "keda-key"
TOKEN = "keda-agent-token"
AUTH = (("authorization", "Api-Key " + API_KEY),)
TIMEOUT = 20
SETTINGS = {"min_replica": 0, "max_replica": 10, "concurrency_target": 10,
            "target_utilization_percentage": 70, "autoscaling_window": 10,
            "scale_down_delay": 600}


def scaled_object(chainlet, chain="keda", api_key=API_KEY, **extra):
    """A ScaledObjectRef as KEDA sends it: the trigger's whole metadata."""
    metadata = {"scalerAddress": "chainscale-control-plane:50051", "chain_id": chain,
                "env_name": "production", "chainlet_name": chainlet}
    if api_key is not None:
        metadata["api_key"] = api_key
    metadata.update(extra)
    return es.ScaledObjectRef(name="model", namespace="serving", scalerMetadata=metadata)


class ActivityStream:
    """Collects every message of one StreamIsActive stream."""

    def __init__(self, stub, ref):
        self.call = stub.StreamIsActive(ref)
        self.results = []
        self.error = None
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for message in self.call:
                with self.lock:
                    self.results.append(message.result)
        except grpc.RpcError as e:
            with self.lock:
                self.error = e

    def received(self):
        with self.lock:
            return list(self.results)

    def close(self):
        self.call.cancel()
        self.thread.join(timeout=10)


class KedaScalerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.cp = ControlPlane(os.environ["CHAINSCALE_CONTROL_PLANE"], cls.dir.name, API_KEY,
                              agent_token=TOKEN)
        cls.cp.start()
        cls.agent = None
        cls.channels = []
        try:
            cls.channel = grpc.insecure_channel(cls.cp.address)
            cls.channels.append(cls.channel)
            cls.scaler = es_grpc.ExternalScalerStub(cls.channel)
            control = cp_grpc.ControlPlaneStub(cls.channel)
            create_chain(control, AUTH, "keda", "Hello_World", SETTINGS, timeout=TIMEOUT)
            create_chain(control, AUTH, "keda-cold", "Model", SETTINGS, timeout=TIMEOUT)
            create_chain(control, AUTH, "demo", "HelloWorld", SETTINGS, timeout=TIMEOUT)
            cls.agent = Agent(os.environ["CHAINSCALE_AGENT"], cls.cp.address, API_KEY, TOKEN,
                              ["--agent_id=keda-agent", "--decision_interval=100ms",
                               "--report_staleness=2s"])
            cls.agent.start()
            agent_channel = grpc.insecure_channel(cls.agent.address)
            cls.channels.append(agent_channel)
            cls.reporter = agent_pb2_grpc.AgentStub(agent_channel)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for channel in cls.channels:
            channel.close()
        if cls.agent is not None:
            cls.agent.kill()
        cls.cp.kill()
        cls.dir.cleanup()

    def code_of(self, call, request):
        with self.assertRaises(grpc.RpcError) as raised:
            call(request, timeout=TIMEOUT)
        return raised.exception.code(), raised.exception.details()

    def desired(self, ref):
        response = self.scaler.GetMetrics(
            es.GetMetricsRequest(scaledObjectRef=ref, metricName="ignored"), timeout=TIMEOUT)
        self.assertEqual(len(response.metricValues), 1)
        return response.metricValues[0].metricValue

    def report(self, chain, chainlet, in_flight):
        """Reports once, retrying while the agent has not been given the chain yet."""
        def attempt():
            try:
                self.reporter.ReportLoad(agent_pb2.ReportLoadRequest(reports=[
                    agent_pb2.LoadReport(source_id="replica-1", chain_id=chain,
                                         env_name="production", chainlet_name=chainlet,
                                         in_flight_requests=in_flight)]),
                    metadata=AUTH, timeout=TIMEOUT)
                return True
            except grpc.RpcError as e:
                if e.code() not in (grpc.StatusCode.NOT_FOUND,
                                    grpc.StatusCode.FAILED_PRECONDITION,
                                    grpc.StatusCode.UNAVAILABLE):
                    raise
                return False
        self.assertTrue(wait_for(attempt, timeout=TIMEOUT, interval=0.1))

    def test_metric_spec_names_the_chainlet_with_target_one(self):
        response = self.scaler.GetMetricSpec(scaled_object("Hello_World"), timeout=TIMEOUT)
        self.assertEqual(len(response.metricSpecs), 1)
        spec = response.metricSpecs[0]
        self.assertEqual(spec.metricName, "chainscale-keda-production-hello-world")
        self.assertEqual(spec.targetSize, 1)
        self.assertEqual(spec.targetSizeFloat, 1.0)
        # env_name defaults to production.
        ref = scaled_object("Hello_World")
        del ref.scalerMetadata["env_name"]
        self.assertEqual(self.scaler.GetMetricSpec(ref, timeout=TIMEOUT).metricSpecs[0].metricName,
                         "chainscale-keda-production-hello-world")

    def test_cold_start_is_pushed_and_counted(self):
        ref = scaled_object("Model", chain="keda-cold")
        self.assertEqual(self.desired(ref), 0)
        self.assertFalse(self.scaler.IsActive(ref, timeout=TIMEOUT).result)
        stream = ActivityStream(self.scaler, ref)
        try:
            self.assertTrue(wait_for(lambda: stream.received() != [], timeout=TIMEOUT))
            self.assertEqual(stream.received(), [False])

            started = time.monotonic()
            self.report("keda-cold", "Model", 25)
            self.assertTrue(wait_for(lambda: True in stream.received(), timeout=TIMEOUT),
                            (stream.received(), stream.error))
            pushed_after = time.monotonic() - started
            self.assertEqual(stream.received(), [False, True])
            # 25 in flight at 10 x 70 % = 7 per replica: 4 replicas.
            self.assertTrue(wait_for(lambda: self.desired(ref) == 4, timeout=TIMEOUT),
                            self.desired(ref))
            self.assertTrue(self.scaler.IsActive(ref, timeout=TIMEOUT).result)
            self.assertIsNone(stream.error)
            print("stream pushed %s, %.2f s after the report; metric value %d"
                  % (stream.received(), pushed_after, self.desired(ref)))
        finally:
            stream.close()

    def test_errors_name_what_is_wrong(self):
        code, details = self.code_of(self.scaler.GetMetrics, es.GetMetricsRequest(
            scaledObjectRef=scaled_object("NoSuchChainlet")))
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
        self.assertIn('"NoSuchChainlet"', details)

        code, details = self.code_of(self.scaler.IsActive,
                                     scaled_object("Hello_World", chain="no-such-chain"))
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
        self.assertIn('"no-such-chain"', details)

        ref = scaled_object("Hello_World")
        del ref.scalerMetadata["chainlet_name"]
        code, details = self.code_of(self.scaler.GetMetricSpec, ref)
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("chainlet_name", details)

        for name, ref in (("wrong key", scaled_object("Hello_World", api_key="not-the-key")),
                          ("no key", scaled_object("Hello_World", api_key=None))):
            with self.subTest(name):
                for call in (self.scaler.IsActive, self.scaler.GetMetricSpec):
                    code, _ = self.code_of(call, ref)
                    self.assertEqual(code, grpc.StatusCode.UNAUTHENTICATED)
                code, _ = self.code_of(self.scaler.GetMetrics,
                                       es.GetMetricsRequest(scaledObjectRef=ref))
                self.assertEqual(code, grpc.StatusCode.UNAUTHENTICATED)
                stream = ActivityStream(self.scaler, ref)
                try:
                    self.assertTrue(wait_for(lambda: stream.error is not None, timeout=TIMEOUT))
                    self.assertEqual(stream.error.code(), grpc.StatusCode.UNAUTHENTICATED)
                    self.assertEqual(stream.received(), [])
                finally:
                    stream.close()

    def test_key_from_env_or_header(self):
        from_env = scaled_object("Hello_World", api_key=None, api_keyFromEnv=API_KEY)
        self.assertEqual(self.scaler.GetMetricSpec(from_env, timeout=TIMEOUT).metricSpecs[0]
                         .targetSize, 1)
        header_only = scaled_object("Hello_World", api_key=None)
        self.assertEqual(self.scaler.GetMetricSpec(header_only, metadata=AUTH, timeout=TIMEOUT)
                         .metricSpecs[0].targetSize, 1)

    def test_the_readme_scaled_object_reaches_its_chainlet(self):
        readme = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
        with open(readme) as f:
            text = f.read()
        trigger = re.search(r"- type: external-push\n    metadata:\n((?:      \S.*\n)+)", text)
        self.assertIsNotNone(trigger, "no external-push trigger in the README")
        metadata = dict(re.match(r"\s*(\w+): (\S+)", line).groups()
                        for line in trigger.group(1).splitlines())
        self.assertEqual(sorted(metadata), ["api_keyFromEnv", "chain_id", "chainlet_name",
                                            "env_name", "scalerAddress"])
        # KEDA keeps the key's name and puts the variable's value in its place.
        metadata["api_keyFromEnv"] = API_KEY + "\n"
        ref = es.ScaledObjectRef(name="hello-world", namespace="serving",
                                 scalerMetadata=metadata)
        spec = self.scaler.GetMetricSpec(ref, timeout=TIMEOUT).metricSpecs[0]
        self.assertEqual((spec.metricName, spec.targetSize),
                         ("chainscale-demo-production-helloworld", 1))
        self.assertFalse(self.scaler.IsActive(ref, timeout=TIMEOUT).result)


if __name__ == "__main__":
    unittest.main()
