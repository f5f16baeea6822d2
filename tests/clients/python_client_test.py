"""A Python user of chainscale: stubs generated from proto/ with Debian's
grpc_python_plugin, then create, update and get exactly as another language would; and
the field violations of an error decoded with the commands and code docs/clients.md
prints."""

import os
import subprocess
import sys
import tempfile
import unittest

import grpc
from google.protobuf import json_format

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "system"))
sys.path.insert(0, os.path.dirname(__file__))
from chainscale_process import ControlPlane  # noqa: E402
from client_session import ROOT, doc_blocks  # noqa: E402
from chainscale.v1 import control_plane_pb2 as cp  # noqa: E402
from chainscale.v1 import control_plane_pb2_grpc as cp_grpc  # noqa: E402
from chainscale.v1 import settings_pb2  # noqa: E402

API_KEY = "python-client-key"
TIMEOUT = 10


class PythonClientTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.cp = ControlPlane(os.environ["CHAINSCALE_CONTROL_PLANE"], self.dir.name, API_KEY)
        self.cp.start()
        self.channel = grpc.insecure_channel(self.cp.address)
        self.stub = cp_grpc.ControlPlaneStub(self.channel)
        self.auth = (("authorization", "Api-Key " + API_KEY),)

    def tearDown(self):
        self.channel.close()
        self.cp.kill()
        self.dir.cleanup()

    def test_create_update_get(self):
        chain = self.stub.CreateChain(
            cp.CreateChainRequest(chain_id="py-chain", chainlet_names=["HelloWorld", "RandInt"]),
            metadata=self.auth, timeout=TIMEOUT)
        self.assertEqual(chain.chain_id, "py-chain")
        self.assertEqual(list(chain.environments), ["development", "production"])

        # Baseten's Python sample body, through protobuf's JSON mapping.
        body = {"updates": [{"autoscaling_settings": {
            "autoscaling_window": 800, "concurrency_target": 4, "max_replica": 3,
            "min_replica": 2, "scale_down_delay": 63, "target_in_flight_tokens": None,
            "target_utilization_percentage": None}, "chainlet_name": "HelloWorld"}]}
        request = json_format.ParseDict(
            body, cp.UpdateChainletEnvironmentAutoscalingSettingsRequest())
        request.chain_id = "py-chain"
        request.env_name = "production"
        response = self.stub.UpdateChainletEnvironmentAutoscalingSettings(
            request, metadata=self.auth, timeout=TIMEOUT)
        self.assertEqual(
            cp.UpdateChainletEnvironmentAutoscalingSettingsResponse.Status.Name(response.status),
            "QUEUED")
        self.assertIn("HelloWorld: min_replica from 0 to 2, max_replica from 1 to 3", response.message)
        self.assertEqual(
            json_format.MessageToDict(response, preserving_proto_field_name=True)["status"],
            "QUEUED")

        env = self.stub.GetChainEnvironment(
            cp.GetChainEnvironmentRequest(chain_id="py-chain", env_name="production"),
            metadata=self.auth, timeout=TIMEOUT)
        settings = {c.chainlet_name: c.autoscaling_settings for c in env.chainlet_settings}
        hello = settings["HelloWorld"]
        self.assertEqual((hello.min_replica, hello.max_replica, hello.autoscaling_window,
                          hello.scale_down_delay, hello.concurrency_target,
                          hello.target_utilization_percentage),
                         (2, 3, 800, 63, 4, 70))
        self.assertFalse(hello.HasField("target_in_flight_tokens"))
        self.assertEqual(settings["RandInt"].max_replica, 1)

        again = self.stub.UpdateChainletEnvironmentAutoscalingSettings(
            request, metadata=self.auth, timeout=TIMEOUT)
        self.assertEqual(again.status,
                         cp.UpdateChainletEnvironmentAutoscalingSettingsResponse.UNCHANGED)

    def test_errors_carry_codes(self):
        with self.assertRaises(grpc.RpcError) as err:
            self.stub.GetChain(cp.GetChainRequest(chain_id="missing"), metadata=self.auth,
                               timeout=TIMEOUT)
        self.assertEqual(err.exception.code(), grpc.StatusCode.NOT_FOUND)
        with self.assertRaises(grpc.RpcError) as err:
            self.stub.ListChains(cp.ListChainsRequest(), timeout=TIMEOUT)
        self.assertEqual(err.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        self.stub.CreateChain(cp.CreateChainRequest(chain_id="c", chainlet_names=["A"]),
                              metadata=self.auth, timeout=TIMEOUT)
        bad = cp.UpdateChainletEnvironmentAutoscalingSettingsRequest(
            chain_id="c", env_name="production",
            updates=[cp.ChainletEnvironmentAutoscalingSettingsUpdate(
                chainlet_name="A",
                autoscaling_settings=settings_pb2.AutoscalingSettings(min_replica=5))])
        with self.assertRaises(grpc.RpcError) as err:
            self.stub.UpdateChainletEnvironmentAutoscalingSettings(
                bad, metadata=self.auth, timeout=TIMEOUT)
        self.assertEqual(err.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("updates[0].autoscaling_settings.min_replica", err.exception.details())

    def test_field_violations_decode_as_the_page_shows(self):
        # The page's generation command, as printed, in a directory of its own.
        commands = [b for b in doc_blocks("Python", "sh") if not b.startswith("sudo ")]
        self.assertEqual(len(commands), 1)
        os.symlink(os.path.join(ROOT, "proto"), os.path.join(self.dir.name, "proto"))
        out = subprocess.run(["bash", "-c", "set -e\n" + commands[0]], cwd=self.dir.name,
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        sys.path.insert(0, os.path.join(self.dir.name, "gen", "python"))
        try:
            (code,) = doc_blocks("Python", "python")
            namespace = {}
            exec(code, namespace)  # defines field_violations(error)
        finally:
            sys.path.pop(0)
        self.stub.CreateChain(cp.CreateChainRequest(chain_id="c", chainlet_names=["A", "B"]),
                              metadata=self.auth, timeout=TIMEOUT)
        bad = json_format.ParseDict({"chain_id": "c", "env_name": "development", "updates": [
            {"chainlet_name": "A", "autoscaling_settings": {"max_replica": 2}},
            {"chainlet_name": "B", "autoscaling_settings": {"autoscaling_window": 5}}]},
            cp.UpdateChainletEnvironmentAutoscalingSettingsRequest())
        with self.assertRaises(grpc.RpcError) as err:
            self.stub.UpdateChainletEnvironmentAutoscalingSettings(
                bad, metadata=self.auth, timeout=TIMEOUT)
        self.assertEqual(err.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(
            [(v.field, v.description) for v in namespace["field_violations"](err.exception)],
            [("updates[0].autoscaling_settings.max_replica",
              "is fixed at 1 in development environments, got 2"),
             ("updates[1].autoscaling_settings.autoscaling_window",
              "must be between 10 and 3600 seconds, got 5")])


if __name__ == "__main__":
    unittest.main()
