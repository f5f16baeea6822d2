"""The cURL and Python samples of Baseten's OpenAPI description of
PATCH .../chainlet_settings/autoscaling_settings, run as printed against a real control
plane: only the host is pointed at chainscale (and the chain id and environment filled
in)."""

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import unittest

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "system"))
from chainscale_process import ControlPlane  # noqa: E402
from chainscale.v1 import control_plane_pb2 as cp  # noqa: E402
from chainscale.v1 import control_plane_pb2_grpc as cp_grpc  # noqa: E402

API_KEY = "openapi-sample-key"

# The cURL sample, verbatim but for the URL's host and path parameters.
CURL_SAMPLE = """curl --request PATCH \\
--url {base}/v1/chains/{chain_id}/environments/{env_name}/chainlet_settings/autoscaling_settings \\
--header "Authorization: Api-Key $BASETEN_API_KEY" \\
--data '{{
  "updates": [
    {{
      "autoscaling_settings": {{
        "autoscaling_window": 800,
        "concurrency_target": 4,
        "max_replica": 3,
        "min_replica": 2,
        "scale_down_delay": 63,
        "target_in_flight_tokens": null,
        "target_utilization_percentage": null
      }},
      "chainlet_name": "HelloWorld"
    }}
  ]
}}'"""

# The Python sample, verbatim but for the URL's host and path parameters.
PYTHON_SAMPLE = """import requests
import os
API_KEY = os.environ.get("BASETEN_API_KEY", "<YOUR_API_KEY>")
url = "{base}/v1/chains/{chain_id}/environments/{env_name}/chainlet_settings/autoscaling_settings"

headers = {{"Authorization": f"Api-Key {{API_KEY}}"}}

response = requests.request(
    "PATCH",
    url,
    headers=headers,
    json={{'updates': [{{'autoscaling_settings': {{'autoscaling_window': 800, 'concurrency_target': 4, 'max_replica': 3, 'min_replica': 2, 'scale_down_delay': 63, 'target_in_flight_tokens': None, 'target_utilization_percentage': None}}, 'chainlet_name': 'HelloWorld'}}]}}
)

print(response.text)
"""


class OpenApiSamplesTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.cp = ControlPlane(os.environ["CHAINSCALE_CONTROL_PLANE"], self.dir.name, API_KEY)
        self.cp.start()
        with grpc.insecure_channel(self.cp.address) as channel:
            cp_grpc.ControlPlaneStub(channel).CreateChain(
                cp.CreateChainRequest(chain_id="sample-chain",
                                      chainlet_names=["HelloWorld", "RandInt"]),
                metadata=(("authorization", "Api-Key " + API_KEY),), timeout=20)
        self.base = "http://127.0.0.1:%d" % self.cp.http_port
        self.env = dict(os.environ, BASETEN_API_KEY=API_KEY)

    def tearDown(self):
        self.cp.kill()
        self.dir.cleanup()

    def test_curl_sample(self):
        command = CURL_SAMPLE.format(base=self.base, chain_id="sample-chain",
                                     env_name="production")
        out = subprocess.run(["bash", "-c", command + " --silent --show-error"],
                             env=self.env, capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        answer = json.loads(out.stdout)
        self.assertEqual(sorted(answer), ["message", "status"])
        self.assertEqual(answer["status"], "QUEUED")
        self.assertIn("HelloWorld: min_replica from 0 to 2, max_replica from 1 to 3, "
                      "autoscaling_window from 60 to 800, scale_down_delay from 900 to 63, "
                      "concurrency_target from 1 to 4", answer["message"])
        # Again: nothing changes.
        out = subprocess.run(["bash", "-c", command + " --silent --show-error"],
                             env=self.env, capture_output=True, text=True, timeout=60)
        self.assertEqual(json.loads(out.stdout)["status"], "UNCHANGED")

    def test_python_sample(self):
        code = PYTHON_SAMPLE.format(base=self.base, chain_id="sample-chain",
                                    env_name="production")
        os.environ["BASETEN_API_KEY"] = API_KEY
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, "openapi-python-sample", "exec"), {})
        answer = json.loads(printed.getvalue())
        self.assertEqual(answer["status"], "QUEUED")
        self.assertEqual(sorted(answer), ["message", "status"])

    def test_bearer_and_errors_over_http(self):
        import requests
        url = (self.base + "/v1/chains/sample-chain/environments/production/"
               "chainlet_settings/autoscaling_settings")
        body = {"updates": [{"chainlet_name": "RandInt",
                             "autoscaling_settings": {"max_replica": 4}}]}
        ok = requests.patch(url, json=body, headers={"Authorization": "Bearer " + API_KEY},
                            timeout=20)
        self.assertEqual(ok.status_code, 200)
        self.assertEqual(ok.json()["status"], "QUEUED")
        denied = requests.patch(url, json=body, timeout=20)
        self.assertEqual(denied.status_code, 401)
        self.assertEqual(denied.json()["error"]["code"], "UNAUTHENTICATED")
        invalid = requests.patch(url, json={"updates": [{"chainlet_name": "RandInt",
                                                         "autoscaling_settings": {
                                                             "max_replica": 0}}]},
                                 headers={"Authorization": "Api-Key " + API_KEY}, timeout=20)
        self.assertEqual(invalid.status_code, 400)
        self.assertEqual(invalid.json()["error"]["field_violations"][0]["field"],
                         "updates[0].autoscaling_settings.max_replica")
        env = requests.get(self.base + "/v1/chains/sample-chain/environments/production",
                           headers={"Authorization": "Api-Key " + API_KEY}, timeout=20)
        self.assertEqual(env.status_code, 200)
        settings = {c["chainlet_name"]: c["autoscaling_settings"]
                    for c in env.json()["chainlet_settings"]}
        self.assertEqual(settings["RandInt"]["max_replica"], 4)


if __name__ == "__main__":
    unittest.main()
