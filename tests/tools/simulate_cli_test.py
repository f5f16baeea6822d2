"""chainscale-simulate as a user runs it: --help lists every flag with the documented
defaults, the meters in text and JSON, scenarios, sweeps, the errors of bad input, and the
README's session on the bundled sample trace as printed there."""

import json
import os
import re
import subprocess
import unittest

SOURCE_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SAMPLE_TRACE = os.path.join(SOURCE_DIR, "tools", "testdata", "sample_trace.csv")


def simulate(*args):
    return subprocess.run([os.environ["CHAINSCALE_SIMULATE"]] + list(args),
                          capture_output=True, text=True, timeout=120)


class SimulateCliTest(unittest.TestCase):
    def test_help_lists_every_flag_with_the_documented_defaults(self):
        out = simulate("--help")
        self.assertEqual(out.returncode, 1)  # Abseil's --help exits 1
        text = out.stdout + out.stderr
        self.assertNotIn("No flags matched", text)
        # Flag help wraps; join the lines so each flag reads as one.
        flat = re.sub(r"\s+", " ", text)
        want = {"min_replica": "0", "max_replica": "1", "autoscaling_window": "60",
                "scale_down_delay": "900", "concurrency_target": "1",
                "target_utilization_percentage": "70", "max_scale_down_rate": "50",
                "startup": "0", "tail": "30m", "duration": "1h"}
        for flag, default in want.items():
            self.assertRegex(flat, r"--%s \([^;]*\); default: %s;" % (flag, default))
        for flag in ("trace", "pattern", "scenario", "sweep", "json", "overhead",
                     "per_context_token", "per_generated_token", "target_in_flight_tokens"):
            self.assertIn("--%s " % flag, flat)

    def test_sample_trace_meters_under_the_defaults(self):
        out = simulate("--trace", SAMPLE_TRACE, "--json")
        self.assertEqual(out.returncode, 0, out.stderr)
        result = json.loads(out.stdout)
        settings = result["autoscaling_settings"]
        self.assertEqual((settings["max_replica"], settings["scale_down_delay"],
                          settings["concurrency_target"]), (1, 900, 1))
        meters = result["meters"]
        # The trace spans 193 s of in-flight load; 30 min of idle tail follow.
        self.assertEqual(meters["seconds"], 193 + 1800)
        self.assertEqual(meters["peak_replicas"], 1)
        self.assertEqual(meters["cold_starts"], 1)
        # Up to 1 at the first request, back to 0 once 900 s pass after the load ends.
        self.assertEqual((meters["scale_ups"], meters["scale_downs"]), (1, 1))
        self.assertGreater(meters["queued_request_seconds"], 0)  # one replica is not enough
        self.assertGreater(meters["capped_seconds"], 0)
        self.assertEqual(len(result["events"]), 2)
        self.assertTrue(result["events"][0]["cold_start"])

    def test_text_output_lists_events_and_meters(self):
        out = simulate("--trace", SAMPLE_TRACE, "--max_replica", "10",
                       "--concurrency_target", "4", "--scale_down_delay", "300")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("cold start: scaled up from 0 to 1", out.stdout)
        self.assertIn("scaled down from 10 to 5 (at most 50% per step)", out.stdout)
        for meter in ("replica-seconds", "idle replica-seconds", "queued request-seconds",
                      "cold starts", "scale events", "seconds capped", "peak replicas"):
            self.assertRegex(out.stdout, r"\n  %s +[0-9.]+" % meter)

    def test_a_scenario_with_an_override(self):
        base = json.loads(simulate("--scenario", "cold_start", "--json").stdout)
        self.assertEqual(base["startup_seconds"], 120)
        self.assertEqual(base["autoscaling_settings"]["scale_down_delay"], 120)
        self.assertGreaterEqual(base["meters"]["cold_starts"], 4)
        warm = json.loads(simulate("--scenario", "cold_start", "--min_replica", "1",
                                   "--json").stdout)
        self.assertEqual(warm["autoscaling_settings"]["min_replica"], 1)
        self.assertEqual(warm["autoscaling_settings"]["scale_down_delay"], 120)
        self.assertEqual(warm["meters"]["cold_starts"], 0)

    def test_sweep_prints_the_frontier(self):
        out = simulate("--scenario", "spike", "--sweep",
                       "scale_down_delay=0,300,900;autoscaling_window=10,60")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("sweep: 6 combinations; * marks the cost/queueing frontier", out.stdout)
        rows = [line for line in out.stdout.splitlines()
                if re.match(r"^ [ *] \d", line)]
        self.assertEqual(len(rows), 6)
        self.assertTrue(any(row.startswith(" * ") for row in rows))
        result = json.loads(simulate("--scenario", "spike", "--json", "--sweep",
                                     "scale_down_delay=0,300,900").stdout)
        self.assertEqual([p["autoscaling_settings"]["scale_down_delay"]
                          for p in result["sweep"]], [0, 300, 900])
        costs = [p["meters"]["replica_seconds"] for p in result["sweep"]]
        self.assertEqual(costs, sorted(costs))  # a longer delay holds replicas longer

    def test_bad_input_exits_2_saying_what_is_wrong(self):
        cases = [
            (["--pattern", "zigzag:1"], "bad load pattern"),
            (["--pattern", "step:1,5,1m", "--max_replica", "0"],
             "autoscaling_settings.max_replica: must be between 1 and 1000"),
            (["--scenario", "nope"], "no scenario \"nope\"; choose one of step, spike"),
            ([], "give the load: one of --trace, --pattern, --scenario"),
            (["--pattern", "constant:1", "--sweep", "scale_down_delay"], "FIELD=V1,V2"),
            (["--pattern", "constant:1", "--sweep", "speed=1,2"], "is not a setting"),
        ]
        for args, message in cases:
            out = simulate(*args)
            self.assertEqual(out.returncode, 2, args)
            self.assertIn(message, out.stderr, args)
        out = simulate("--trace", "/nonexistent.csv")
        self.assertEqual(out.returncode, 2)
        self.assertIn("cannot open /nonexistent.csv", out.stderr)

    def test_readme_session_prints_what_the_readme_shows(self):
        with open(os.path.join(SOURCE_DIR, "README.md")) as f:
            readme = f.read()
        match = re.search(r"```sh\n(\./build/tools/chainscale-simulate .*?)```\n```text\n(.*?)```",
                          readme, re.S)
        self.assertIsNotNone(match, "README.md shows no chainscale-simulate session")
        command = match.group(1).replace("\\\n", " ").split()
        self.assertEqual(command[0], "./build/tools/chainscale-simulate")
        out = subprocess.run([os.environ["CHAINSCALE_SIMULATE"]] + command[1:], cwd=SOURCE_DIR,
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        # Every line shown appears in the output, in order; "..." stands for lines left out.
        printed = out.stdout.splitlines()
        at = 0
        for line in match.group(2).splitlines():
            if line == "...":
                continue
            self.assertIn(line, printed[at:], "README line not printed (in order): " + line)
            at = printed.index(line, at) + 1


if __name__ == "__main__":
    unittest.main()
