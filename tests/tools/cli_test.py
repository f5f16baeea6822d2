"""The chainscale CLI against a real control plane: JSON in, JSON out, and errors with
their code and field violations on stderr and a non-zero exit."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "system"))
from chainscale_process import ControlPlane  # noqa: E402

API_KEY = "cli-key"


class CliTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.cp = ControlPlane(os.environ["CHAINSCALE_CONTROL_PLANE"], self.dir.name, API_KEY)
        self.cp.start()

    def tearDown(self):
        self.cp.kill()
        self.dir.cleanup()

    def cli(self, *args):
        return subprocess.run(
            [os.environ["CHAINSCALE_CLI"], "--control_plane=" + self.cp.address,
             "--api_key=" + API_KEY] + list(args),
            capture_output=True, text=True, timeout=60)

    def test_calls_print_json_with_proto_field_names(self):
        out = self.cli("CreateChain", '{"chain_id": "cli", "chainlet_names": ["A"]}')
        self.assertEqual(out.returncode, 0, out.stderr)
        chain = json.loads(out.stdout)
        self.assertEqual(chain["chain_id"], "cli")
        self.assertEqual(chain["chainlet_names"], ["A"])
        out = self.cli("UpdateChainletEnvironmentAutoscalingSettings",
                       '{"chain_id": "cli", "env_name": "production", "updates": '
                       '[{"chainlet_name": "A", "autoscaling_settings": {"max_replica": 4}}]}')
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["status"], "QUEUED")
        out = self.cli("GetChainEnvironment", '{"chain_id": "cli", "env_name": "production"}')
        env = json.loads(out.stdout)
        self.assertEqual(env["chainlet_settings"][0]["autoscaling_settings"]["max_replica"], 4)

    def test_errors_go_to_stderr_with_their_code(self):
        out = self.cli("GetChain", '{"chain_id": "missing"}')
        self.assertEqual(out.returncode, 1)
        self.assertEqual(out.stdout, "")
        self.assertIn("ERROR: NOT_FOUND: chain \"missing\" not found", out.stderr)
        self.cli("CreateChain", '{"chain_id": "cli", "chainlet_names": ["A"]}')
        out = self.cli("UpdateChainletEnvironmentAutoscalingSettings",
                       '{"chain_id": "cli", "env_name": "production", "updates": '
                       '[{"chainlet_name": "A", "autoscaling_settings": {"min_replica": 9}}]}')
        self.assertEqual(out.returncode, 1)
        self.assertIn("ERROR: INVALID_ARGUMENT", out.stderr)
        self.assertIn("  updates[0].autoscaling_settings.min_replica: min_replica (9) must "
                      "not exceed max_replica (1)", out.stderr)
        out = self.cli("GetChain", "{not json")
        self.assertEqual(out.returncode, 2)
        out = self.cli("NoSuchMethod")
        self.assertEqual(out.returncode, 2)
        self.assertIn("unknown method", out.stderr)


if __name__ == "__main__":
    unittest.main()
