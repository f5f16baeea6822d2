"""Errors that name many things still reach clients with default limits (8 KiB of
metadata) with their real code: Python grpcio with its defaults and the project's own
CLI, against the real control plane and agent. DESIGN §14: messages at most 1 KiB, lists
cut to 10 names and "and N more", field violations bounded."""

import os
import subprocess
import sys
import tempfile
import unittest

import grpc
from google.rpc import error_details_pb2, status_pb2

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "system"))
from chainscale_process import Agent, ControlPlane, wait_for  # noqa: E402
from chainscale.v1 import agent_pb2, agent_pb2_grpc  # noqa: E402
from chainscale.v1 import control_plane_pb2 as cp  # noqa: E402
from chainscale.v1 import control_plane_pb2_grpc as cp_grpc  # noqa: E402

KEY = "error-limits-key"
TOKEN = "error-limits-token"
AUTH = (("authorization", "Api-Key " + KEY),)
CHAINLETS = ["Chainlet%03d" % i for i in range(300)]
MAX_MESSAGE = 1024
MAX_VIOLATIONS = 10


def violations_of(error):
    """The field violations in the error's grpc-status-details-bin trailer."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                bad_request = error_details_pb2.BadRequest()
                if detail.Unpack(bad_request):
                    return list(bad_request.field_violations)
    return []


class ErrorLimitsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.cp = ControlPlane(os.environ["CHAINSCALE_CONTROL_PLANE"], cls.dir.name, KEY,
                              agent_token=TOKEN)
        cls.cp.start()
        cls.channel = grpc.insecure_channel(cls.cp.address)  # default limits
        cls.stub = cp_grpc.ControlPlaneStub(cls.channel)
        cls.stub.CreateChain(cp.CreateChainRequest(chain_id="wide", chainlet_names=CHAINLETS),
                             metadata=AUTH, timeout=30)
        cls.agent = Agent(os.environ["CHAINSCALE_AGENT"], cls.cp.address, KEY, TOKEN,
                          extra_args=["--agent_id=limits-agent"])
        cls.agent.start()
        cls.agent_channel = grpc.insecure_channel(cls.agent.address)
        cls.agent_stub = agent_pb2_grpc.AgentStub(cls.agent_channel)
        known = agent_pb2.ReportLoadRequest(reports=[agent_pb2.LoadReport(
            source_id="s", chain_id="wide", env_name="production", chainlet_name="Chainlet000",
            in_flight_requests=0)])

        def agent_has_settings():
            try:
                cls.agent_stub.ReportLoad(known, metadata=AUTH, timeout=5)
                return True
            except grpc.RpcError:
                return False

        assert wait_for(agent_has_settings, timeout=30), "the agent never got its settings"

    @classmethod
    def tearDownClass(cls):
        cls.agent_channel.close()
        cls.channel.close()
        cls.agent.kill()
        cls.cp.kill()
        cls.dir.cleanup()

    def update(self, updates):
        return cp.UpdateChainletEnvironmentAutoscalingSettingsRequest(
            chain_id="wide", env_name="production", updates=updates)

    def expect(self, what, call, code):
        """Makes the call, which must fail with `code` and a short message."""
        with self.assertRaises(grpc.RpcError) as raised:
            call()
        error = raised.exception
        violations = violations_of(error)
        details = error.details() or ""
        print("%s: %s, message %d bytes, %d field violations: %s" % (
            what, error.code().name, len(details.encode()), len(violations), details[:160]))
        self.assertEqual(error.code(), code, details[:300])
        self.assertLessEqual(len(details.encode()), MAX_MESSAGE)
        self.assertLessEqual(len(violations), MAX_VIOLATIONS)
        return details, violations

    def test_an_unknown_chainlet_in_a_300_chainlet_chain(self):
        details, _ = self.expect("unknown chainlet among 300", lambda: self.stub.UpdateChainletEnvironmentAutoscalingSettings(
            self.update([cp.ChainletEnvironmentAutoscalingSettingsUpdate(
                chainlet_name="Nope", autoscaling_settings={"max_replica": 2})]),
            metadata=AUTH, timeout=20), grpc.StatusCode.NOT_FOUND)
        self.assertIn('"Nope"', details)
        self.assertIn("and 290 more", details)

    def test_300_invalid_updates(self):
        updates = [cp.ChainletEnvironmentAutoscalingSettingsUpdate(
            chainlet_name=name, autoscaling_settings={"max_replica": 0}) for name in CHAINLETS]
        details, violations = self.expect("300 invalid updates", lambda: self.stub.UpdateChainletEnvironmentAutoscalingSettings(
            self.update(updates), metadata=AUTH, timeout=20), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(violations[0].field, "updates[0].autoscaling_settings.max_replica")
        self.assertIn("290 more", details)

    def test_a_100000_character_name(self):
        name = "x" * 100_000
        details, _ = self.expect("a 100 000-character chainlet name", lambda: self.stub.UpdateChainletEnvironmentAutoscalingSettings(
            self.update([cp.ChainletEnvironmentAutoscalingSettingsUpdate(
                chainlet_name=name, autoscaling_settings={"max_replica": 2})]),
            metadata=AUTH, timeout=20), grpc.StatusCode.NOT_FOUND)
        self.expect("a 100 000-character chain id", lambda: self.stub.GetChainEnvironment(
            cp.GetChainEnvironmentRequest(chain_id=name, env_name="production"),
            metadata=AUTH, timeout=20), grpc.StatusCode.INVALID_ARGUMENT)

    def test_300_unknown_chainlets_in_one_agent_batch(self):
        reports = [agent_pb2.LoadReport(source_id="s", chain_id="wide", env_name="production",
                                        chainlet_name="Missing%03d" % i, in_flight_requests=1)
                   for i in range(300)]
        details, _ = self.expect("300 unknown chainlets in one ReportLoad", lambda: self.agent_stub.ReportLoad(
            agent_pb2.ReportLoadRequest(reports=reports), metadata=AUTH, timeout=20),
            grpc.StatusCode.NOT_FOUND)
        self.assertIn("and 290 more", details)

    def cli(self, *args):
        return subprocess.run([os.environ["CHAINSCALE_CLI"], "--control_plane=" + self.cp.address,
                               "--agent=" + self.agent.address, "--api_key=" + KEY] + list(args),
                              capture_output=True, text=True, timeout=60)

    def test_the_cli_prints_the_real_codes(self):
        cases = [
            ("UpdateChainletEnvironmentAutoscalingSettings",
             '{"chain_id": "wide", "env_name": "production", "updates": [{"chainlet_name": '
             '"Nope", "autoscaling_settings": {"max_replica": 2}}]}', "NOT_FOUND"),
            ("UpdateChainletEnvironmentAutoscalingSettings",
             '{"chain_id": "wide", "env_name": "production", "updates": [%s]}' % ", ".join(
                 '{"chainlet_name": "%s", "autoscaling_settings": {"max_replica": 0}}' % n
                 for n in CHAINLETS), "INVALID_ARGUMENT"),
            ("ReportLoad", '{"reports": [%s]}' % ", ".join(
                '{"source_id": "s", "chain_id": "wide", "env_name": "production", '
                '"chainlet_name": "Missing%03d", "in_flight_requests": 1}' % i
                for i in range(300)), "NOT_FOUND"),
        ]
        for method, body, code in cases:
            out = self.cli(method, body)
            first = out.stderr.splitlines()[0] if out.stderr else ""
            print("CLI %s: exit %d, %s" % (method, out.returncode, first[:160]))
            self.assertEqual(out.returncode, 1, out.stderr[:500])
            self.assertTrue(first.startswith("ERROR: %s: " % code), first[:300])
            self.assertLessEqual(len(first.encode()), MAX_MESSAGE + len("ERROR: %s: " % code))


if __name__ == "__main__":
    unittest.main()
