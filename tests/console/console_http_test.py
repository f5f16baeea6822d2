"""The console's routes on the real control plane's HTTP port, over raw sockets: the page
and its assets without a key, the simulation calls admitted as the REST gateway admits its
own (so wrong keys against them are throttled with the gateway's), methods, and a
simulation answered with its meters. Each test prints what it tried and what held."""

import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "system"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "http"))
from chainscale_process import ControlPlane  # noqa: E402
from raw_http import Connection, exchange, request  # noqa: E402

KEY = "console-http-key"
AUTH = ("Authorization", "Api-Key " + KEY)
SIMULATION = json.dumps({"pattern": "step:0,8,1m", "duration_seconds": 300,
                         "autoscaling_settings": {"max_replica": 5, "concurrency_target": 2}}).encode()


class ConsoleHttpTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.cp = ControlPlane(os.environ["CHAINSCALE_CONTROL_PLANE"], self.dir.name, KEY)
        self.cp.start()
        self.port = self.cp.http_port

    def tearDown(self):
        self.cp.kill()
        self.dir.cleanup()

    def call(self, method, path, headers=(AUTH,), body=b"", source=None):
        return exchange(self.port, method, path, headers, body, source, timeout=30)

    def test_page_and_assets_need_no_key(self):
        page = self.call("GET", "/", headers=())
        self.assertEqual(page.status, 200)
        self.assertTrue(page.header("content-type").startswith("text/html"), page.headers)
        self.assertIn("<script", page.body)
        self.assertIn("default-src 'self'", page.header("content-security-policy"))
        script = self.call("GET", "/console/console.js", headers=())
        self.assertEqual(script.status, 200)
        self.assertIn("javascript", script.header("content-type"))
        head = self.call("HEAD", "/console/console.js", headers=())
        self.assertEqual((head.status, head.body), (200, ""))
        session = self.call("GET", "/v1/console/session", headers=())
        self.assertEqual((session.status, json.loads(session.body)), (200, {"auth": "api_key"}))
        missing = self.call("GET", "/console/nothing.js", headers=())
        self.assertEqual(missing.status, 404)
        self.assertEqual(json.loads(missing.body)["error"]["code"], "NOT_FOUND")
        print("page %d bytes, console.js %d bytes, session %s, a missing asset %d"
              % (len(page.body), len(script.body), session.body.strip(), missing.status))

    def test_a_simulation_is_answered_with_its_meters(self):
        answer = self.call("POST", "/v1/simulations",
                           headers=(AUTH, ("Content-Type", "application/json")), body=SIMULATION)
        self.assertEqual(answer.status, 200, answer.body)
        meters = json.loads(answer.body)["meters"]
        print("step 0 -> 8 at 1 m over 5 m, max 5, concurrency 2:", meters)
        self.assertEqual(int(meters["cold_starts"]), 1)
        self.assertEqual(int(meters["peak_replicas"]), 5)
        self.assertGreater(int(meters["capped_seconds"]), 0)
        wrong = self.call("GET", "/v1/simulations")
        self.assertEqual(wrong.status, 405)
        self.assertEqual(wrong.header("allow"), "OPTIONS, POST")
        bad = self.call("POST", "/v1/simulations", body=b'{"pattern": "zigzag:1"}')
        self.assertEqual(bad.status, 400)
        self.assertEqual(json.loads(bad.body)["error"]["code"], "INVALID_ARGUMENT")
        scenarios = self.call("GET", "/v1/simulations/scenarios")
        self.assertEqual(scenarios.status, 200)
        names = [s["name"] for s in json.loads(scenarios.body)["scenarios"]]
        for name in ("step", "spike", "ramp", "diurnal", "cold_start", "oscillation"):
            self.assertIn(name, names)

    def test_wrong_keys_on_simulations_are_throttled_as_on_the_gateway(self):
        conn = Connection(self.port, timeout=30)
        codes = []
        for i in range(30):
            conn.send(request("POST", "/v1/simulations",
                              (("Authorization", "Api-Key guess-%d" % i),), SIMULATION))
            answer = conn.read_response()
            codes.append(answer.status)
            if answer.header("connection") == "close":
                conn.close()
                conn = Connection(self.port, timeout=30)
        conn.close()
        # The gateway's own calls from the same address are throttled too: one budget.
        rest = self.call("GET", "/v1/chains", headers=(("Authorization", "Api-Key guess"),))
        other = self.call("POST", "/v1/simulations", body=SIMULATION, source="127.0.0.2")
        print("30 wrong keys on POST /v1/simulations from 127.0.0.1: %d answered 401, %d "
              "refused 429; then a wrong key on the REST gateway: %d; a right key from "
              "127.0.0.2: %d" % (codes.count(401), codes.count(429), rest.status, other.status))
        self.assertLessEqual(codes.count(401), 11)
        self.assertGreaterEqual(codes.count(429), 19)
        self.assertEqual(codes.count(401) + codes.count(429), 30)
        self.assertEqual(rest.status, 429)
        self.assertEqual(other.status, 200)


if __name__ == "__main__":
    unittest.main()
