"""The console in a real browser (headless Chromium through chromedriver) against a real
control plane and agent with load flowing: the pages load without console errors; a
setting changed in the Configure panel is stored (read back over gRPC); a bad value shows
its field error and stores nothing; the simulator's meters equal chainscale-simulate
--json for the same inputs. A screenshot of each page is written under
build/console-screenshots/.

Skips (exit 77, ctest's SKIP_RETURN_CODE), saying why, when python3-selenium, Chromium or
chromedriver is not installed; once they are, a browser that does not start fails."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import grpc
from google.protobuf import json_format

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "system"))
from chainscale_process import Agent, ControlPlane, wait_for  # noqa: E402
from chainscale.v1 import control_plane_pb2 as cp  # noqa: E402
from chainscale.v1 import control_plane_pb2_grpc as cp_grpc  # noqa: E402

try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import Select, WebDriverWait
    SELENIUM_ERROR = None
except ImportError as e:  # reported as the skip reason
    SELENIUM_ERROR = e

API_KEY = "console-key"
TOKEN = "console-agent-token"
AUTH = (("authorization", "Api-Key " + API_KEY),)
CHAIN = "console"
SOURCE_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SAMPLE_TRACE = os.path.join(SOURCE_DIR, "tools", "testdata", "sample_trace.csv")
WAIT = 30  # seconds any one page condition may take
# The flags that work in containers and CI: no sandbox (no user namespaces), no GPU, and
# nothing that reaches the network on its own.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,1050"]


def find(*names):
    for name in names:
        path = shutil.which(name) or (os.path.exists(name) and name)
        if path:
            return path
    return None


SKIP = 77  # ctest's SKIP_RETURN_CODE for this test


def missing_browser():
    """Why the browser tests cannot run here, or None."""
    if SELENIUM_ERROR is not None:
        return "python3-selenium is not installed (%s); ./dev deps installs it" % SELENIUM_ERROR
    if not find("chromium", "chromium-browser", "/usr/lib/chromium/chromium") or \
            not find("chromedriver", "/usr/lib/chromium/chromedriver"):
        return "chromium and chromium-driver are not installed; ./dev deps installs them"
    return None


def start_browser(user_data_dir):
    """A fresh headless Chromium, or the reason it cannot start."""
    chromium = find("chromium", "chromium-browser", "/usr/lib/chromium/chromium")
    driver_path = find("chromedriver", "/usr/lib/chromium/chromedriver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS + ["--user-data-dir=" + user_data_dir]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=driver_path) \
        if hasattr(webdriver, "ChromeService") else \
        webdriver.chrome.service.Service(executable_path=driver_path)
    try:
        return webdriver.Chrome(service=service, options=options), None
    except WebDriverException as e:
        return None, "Chromium did not start: %s" % str(e).splitlines()[0]


class ConsoleBrowserTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.started = time.monotonic()
        cls.dir = tempfile.TemporaryDirectory()
        cls.screenshots = os.environ.get("CHAINSCALE_SCREENSHOT_DIR",
                                         os.path.join(SOURCE_DIR, "build", "console-screenshots"))
        os.makedirs(cls.screenshots, exist_ok=True)
        cls.driver, reason = start_browser(os.path.join(cls.dir.name, "chromium-profile"))
        if cls.driver is None:
            cls.dir.cleanup()
            raise RuntimeError(reason)
        cls.driver.set_page_load_timeout(WAIT)
        cls.processes = []
        cls.loadgen = None
        try:
            cls.start_cluster()
        except Exception:
            cls.tearDownClass()
            raise
        print("cluster and browser up in %.1f s" % (time.monotonic() - cls.started))

    @classmethod
    def start_cluster(cls):
        cls.cp = ControlPlane(os.environ["CHAINSCALE_CONTROL_PLANE"],
                              os.path.join(cls.dir.name, "cp"), API_KEY, agent_token=TOKEN)
        cls.cp.start()
        cls.processes.append(cls.cp)
        cls.channel = grpc.insecure_channel(cls.cp.address)
        cls.stub = cp_grpc.ControlPlaneStub(cls.channel)
        cls.stub.CreateChain(cp.CreateChainRequest(chain_id=CHAIN,
                                                   chainlet_names=["HelloWorld", "RandInt"]),
                             metadata=AUTH, timeout=10)
        cls.stub.UpdateChainletEnvironmentAutoscalingSettings(json_format.ParseDict({
            "chain_id": CHAIN, "env_name": "production", "updates": [
                {"chainlet_name": "HelloWorld", "autoscaling_settings": {
                    "max_replica": 10, "concurrency_target": 2, "autoscaling_window": 10,
                    "scale_down_delay": 30}}]},
            cp.UpdateChainletEnvironmentAutoscalingSettingsRequest()), metadata=AUTH, timeout=10)
        agent = Agent(os.environ["CHAINSCALE_AGENT"], cls.cp.address, API_KEY, TOKEN,
                      ["--agent_id=console-agent", "--selector=%s/production" % CHAIN])
        agent.start()
        cls.processes.append(agent)
        cls.loadgen = subprocess.Popen(
            [os.environ["CHAINSCALE_LOADGEN"], "--agent=" + agent.address,
             "--api_key=" + API_KEY, "--chain_id=" + CHAIN, "--chainlets=HelloWorld",
             "--sources=1", "--pattern=points:10s,1,6,9,4,12", "--duration=10m"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Wait until the agent's decisions reach the store, so the page has them.
        assert wait_for(lambda: cls.settings("HelloWorld")[1].HasField("decision"), 30), \
            "no decision stored for HelloWorld"

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "driver", None) is not None:
            cls.driver.quit()
        if getattr(cls, "loadgen", None) is not None and cls.loadgen.poll() is None:
            cls.loadgen.send_signal(signal.SIGTERM)
            cls.loadgen.wait(timeout=10)
        for process in getattr(cls, "processes", []):
            process.kill()
        if getattr(cls, "channel", None) is not None:
            cls.channel.close()
        cls.dir.cleanup()
        print("browser tests took %.1f s" % (time.monotonic() - cls.started))

    # ---------------------------------------------------------------------------------
    # helpers

    @classmethod
    def settings(cls, chainlet, env="production"):
        """(revision of the store, ChainletEnvironmentSettings) read over gRPC."""
        environment = cls.stub.GetChainEnvironment(
            cp.GetChainEnvironmentRequest(chain_id=CHAIN, env_name=env), metadata=AUTH,
            timeout=10)
        for c in environment.chainlet_settings:
            if c.chainlet_name == chainlet:
                return cls.cp.revision(), c
        raise KeyError(chainlet)

    def url(self, fragment=""):
        return "http://127.0.0.1:%d/%s" % (self.cp.http_port, fragment)

    def wait(self, condition, message, timeout=WAIT):
        return WebDriverWait(self.driver, timeout, ignored_exceptions=(
            StaleElementReferenceException,)).until(condition, message)

    def visible(self, css, timeout=WAIT):
        return self.wait(expected_conditions.visibility_of_element_located(
            (By.CSS_SELECTOR, css)), "no visible %s" % css, timeout)

    def click(self, css):
        """Clicks the element once it is visible; the live view redraws its rows on every
        poll, so an element found just before a redraw is found again."""
        def clicked(driver):
            element = expected_conditions.visibility_of_element_located(
                (By.CSS_SELECTOR, css))(driver)
            if not element:
                return False
            element.click()
            return True
        self.wait(clicked, "no visible %s to click" % css)

    def open(self, fragment):
        """Opens the console at #fragment, giving the key when the page asks for it."""
        self.driver.get(self.url("#" + fragment))
        self.wait(lambda d: d.execute_script(
            "return document.getElementById('key-dialog').open || "
            "document.getElementById('view').children.length > 0"), "the page did not start")
        if self.driver.execute_script("return document.getElementById('key-dialog').open"):
            self.driver.find_element(By.ID, "key-input").send_keys(API_KEY)
            self.driver.find_element(By.ID, "key-submit").click()
        self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#view > section"),
                  "no view after the key")

    def browser_errors(self):
        return [entry for entry in self.driver.get_log("browser")
                if entry["level"] == "SEVERE"]

    def screenshot(self, name):
        path = os.path.join(self.screenshots, name)
        self.driver.save_screenshot(path)
        print("screenshot", path)

    def set_field(self, css, value):
        element = self.driver.find_element(By.CSS_SELECTOR, css)
        element.clear()
        element.send_keys(str(value))

    def meters(self):
        return {m.get_attribute("data-meter"): float(m.get_attribute("data-value"))
                for m in self.driver.find_elements(By.CSS_SELECTOR, "#meters .meter")}

    def simulated(self, *args):
        out = subprocess.run([os.environ["CHAINSCALE_SIMULATE"], "--json"] + list(args),
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        return {k: float(v) for k, v in json.loads(out.stdout)["meters"].items()
                if k in ("replica_seconds", "idle_replica_seconds", "queued_request_seconds",
                         "cold_starts", "scale_events", "capped_seconds", "peak_replicas")}

    def simulation_settled(self):
        """Waits for the simulator to show the answer to the latest inputs."""
        self.wait(lambda d: d.find_element(By.ID, "simulator-view").get_attribute(
            "data-state") == "done" and d.find_elements(By.CSS_SELECTOR, "#meters .meter"),
            "the simulation did not finish")

    # ---------------------------------------------------------------------------------
    # tests

    def test_1_pages_load_without_console_errors(self):
        self.open("/chains")
        self.visible("#chains-table tr[data-chain='%s']" % CHAIN)
        self.screenshot("chains.png")
        self.click("tr[data-chain='%s'] a.env-link[href$='/production']" % CHAIN)
        row = self.visible("#chainlets-table tr[data-chainlet='HelloWorld']")
        # The live decision: replicas and status from the agent, through the store.
        self.wait(lambda d: d.find_element(
            By.CSS_SELECTOR, "tr[data-chainlet='HelloWorld'] td[data-field='replicas']"
        ).text not in ("", "-", "0"), "HelloWorld shows no replicas")
        self.assertRegex(row.text, r"ACCEPTED|UNCHANGED|QUEUED")
        # A few polls draw the chart's lines.
        self.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#live-chart path.series")) == 3
                  and d.find_element(By.CSS_SELECTOR, "#live-chart path.series-replicas")
                  .get_attribute("d").count("H") >= 3, "the live chart has no lines")
        self.screenshot("environment.png")
        self.open("/simulator/spike")
        self.simulation_settled()
        self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#sim-chart path.series-replicas"),
                  "the simulator chart has no replicas line")
        self.screenshot("simulator.png")
        self.assertEqual(self.browser_errors(), [])

    def test_8_the_chart_opens_with_the_stored_history(self):
        # Decisions stored before the page opens are on its chart at once, not only the
        # polls made since (the control plane's history of stored decisions).
        history_url = self.url("v1/console/chains/%s/environments/production/history"
                               "?chainlet=HelloWorld" % CHAIN)

        def stored_points():
            request = urllib.request.Request(history_url,
                                             headers={"Authorization": "Api-Key " + API_KEY})
            with urllib.request.urlopen(request, timeout=10) as response:
                return len(json.loads(response.read()).get("points", []))
        self.assertTrue(wait_for(lambda: stored_points() >= 2, 60), "fewer than 2 points")
        # Points are at least a second apart, so the first is a second before the page opens.
        opened = time.time()
        self.open("/chains/%s/production/HelloWorld" % CHAIN)
        self.wait(lambda d: float(d.find_element(By.ID, "live-chart").get_attribute(
            "data-since") or "inf") < opened - 0.5, "the chart starts when the page opened")
        chart = self.driver.find_element(By.ID, "live-chart")
        self.assertGreaterEqual(int(chart.get_attribute("data-points")), 2)
        self.assertGreaterEqual(self.driver.find_element(
            By.CSS_SELECTOR, "#live-chart path.series-replicas").get_attribute("d").count("H"), 1)
        self.assertEqual(self.browser_errors(), [])

    def test_2_configure_panel_stores_a_setting(self):
        self.open("/chains/%s/production/RandInt" % CHAIN)
        self.click("tr[data-chainlet='RandInt'] button.configure")
        self.visible("#configure-panel")
        before_revision, before = self.settings("RandInt")
        self.set_field("#field-max_replica", 7)
        self.set_field("#field-scale_down_delay", 120)
        self.set_field("#field-target_in_flight_tokens", 2000)
        self.driver.find_element(By.ID, "configure-update").click()
        result = self.wait(lambda d: d.find_element(By.ID, "configure-result").get_attribute(
            "data-status"), "no answer to the update")
        # The agent serving console/production applies it in time: ACCEPTED.
        self.assertEqual(result, "ACCEPTED", self.driver.find_element(By.ID, "configure-result").text)
        self.assertIn("max_replica", self.driver.find_element(By.ID, "configure-message").text)
        revision, after = self.settings("RandInt")
        self.assertEqual(revision, before_revision + 1)
        self.assertEqual(after.autoscaling_settings.max_replica, 7)
        self.assertEqual(after.autoscaling_settings.scale_down_delay, 120)
        self.assertEqual(after.autoscaling_settings.target_in_flight_tokens, 2000)
        self.assertEqual(after.autoscaling_settings.concurrency_target,
                         before.autoscaling_settings.concurrency_target)
        self.screenshot("configure.png")
        # The same values again: UNCHANGED, nothing written.
        self.driver.find_element(By.ID, "configure-update").click()
        self.wait(lambda d: d.find_element(By.ID, "configure-result").get_attribute(
            "data-status") == "UNCHANGED", "the same values again are not UNCHANGED")
        self.assertEqual(self.settings("RandInt")[0], revision)
        # An emptied optional field is reset (reset_fields): token-based scaling off.
        self.driver.find_element(By.ID, "field-target_in_flight_tokens").clear()
        self.driver.find_element(By.ID, "configure-update").click()
        self.wait(lambda d: "target_in_flight_tokens" in d.find_element(
            By.ID, "configure-result").text, "the reset was not answered")
        revision, after = self.settings("RandInt")
        self.assertFalse(after.autoscaling_settings.HasField("target_in_flight_tokens"))
        self.assertEqual(after.autoscaling_settings.max_replica, 7)
        self.assertEqual(self.browser_errors(), [])

    def test_7_an_update_made_elsewhere_meanwhile_is_not_overwritten(self):
        self.open("/chains/%s/production/RandInt" % CHAIN)
        self.click("tr[data-chainlet='RandInt'] button.configure")
        self.visible("#configure-panel")
        # Someone else changes the environment after the panel showed its settings.
        self.stub.UpdateChainletEnvironmentAutoscalingSettings(json_format.ParseDict({
            "chain_id": CHAIN, "env_name": "production", "updates": [
                {"chainlet_name": "RandInt", "autoscaling_settings": {"autoscaling_window": 45}}]},
            cp.UpdateChainletEnvironmentAutoscalingSettingsRequest()), metadata=AUTH, timeout=10)
        revision, before = self.settings("RandInt")
        self.set_field("#field-autoscaling_window", 90)
        self.driver.find_element(By.ID, "configure-update").click()
        self.wait(lambda d: d.find_element(By.ID, "configure-result").get_attribute(
            "data-status") == "CONFLICT", "the stale update was not refused")
        self.assertIn("changed since", self.driver.find_element(By.ID, "configure-result").text)
        self.assertEqual(self.settings("RandInt"), (revision, before))
        self.assertEqual(before.autoscaling_settings.autoscaling_window, 45)
        # Configure again starts from what is stored now, and then the update goes through.
        self.click("tr[data-chainlet='RandInt'] button.configure")
        self.wait(lambda d: d.find_element(By.ID, "field-autoscaling_window")
                  .get_attribute("value") == "45", "the panel did not start over")
        self.set_field("#field-autoscaling_window", 90)
        self.driver.find_element(By.ID, "configure-update").click()
        self.wait(lambda d: d.find_element(By.ID, "configure-result").get_attribute(
            "data-status") == "ACCEPTED", "the fresh update was not stored")
        self.assertEqual(self.settings("RandInt")[1].autoscaling_settings.autoscaling_window, 90)
        errors = self.browser_errors()
        self.assertEqual(len(errors), 1, errors)  # the 409 the browser was answered
        self.assertIn("409", errors[0]["message"])

    def test_3_bad_value_shows_its_field_error_and_stores_nothing(self):
        self.open("/chains/%s/production/HelloWorld" % CHAIN)
        self.click("tr[data-chainlet='HelloWorld'] button.configure")
        self.visible("#configure-panel")
        before_revision, before = self.settings("HelloWorld")
        self.set_field("#field-min_replica", 50)       # above max_replica 10
        self.set_field("#field-autoscaling_window", 5)  # below 10
        self.driver.find_element(By.ID, "configure-update").click()
        min_error = self.visible("#error-min_replica")
        window_error = self.visible("#error-autoscaling_window")
        self.assertIn("must not exceed max_replica (10)", min_error.text)
        self.assertIn("must be between 10 and 3600 seconds, got 5", window_error.text)
        self.assertEqual(self.driver.find_element(By.ID, "field-min_replica")
                         .get_attribute("aria-invalid"), "true")
        self.assertEqual(self.driver.find_element(By.ID, "configure-result")
                         .get_attribute("data-status"), "ERROR")
        self.assertFalse(self.driver.find_element(By.ID, "error-max_replica").is_displayed())
        revision, after = self.settings("HelloWorld")
        self.assertEqual(revision, before_revision)
        self.assertEqual(after.autoscaling_settings, before.autoscaling_settings)
        self.screenshot("configure_error.png")
        # The browser logs the 400 it was answered, and nothing else.
        errors = self.browser_errors()
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("400", errors[0]["message"])

    def test_4_simulator_meters_equal_the_command_line(self):
        self.open("/simulator/cold_start")
        self.simulation_settled()
        self.assertEqual(self.meters(), self.simulated("--scenario", "cold_start"))
        # A parameter moved in the page: the same run on the command line.
        previous = self.meters()
        self.set_field("#sim-min_replica", 1)
        self.wait(lambda d: self.meters() != previous, "min_replica 1 changed nothing")
        self.simulation_settled()
        self.assertEqual(self.meters(),
                         self.simulated("--scenario", "cold_start", "--min_replica", "1"))
        self.assertEqual(self.meters()["cold_starts"], 0)
        for scenario in ("spike", "oscillation"):
            self.driver.find_element(By.CSS_SELECTOR,
                                     "#scenarios [data-scenario='%s']" % scenario).click()
            self.wait(lambda d: d.find_element(By.ID, "sim-pattern").get_attribute("value")
                      .startswith({"spike": "spike:", "oscillation": "pulse:"}[scenario]),
                      "scenario %s not chosen" % scenario)
            self.simulation_settled()
            self.assertEqual(self.meters(), self.simulated("--scenario", scenario), scenario)
        # The bundled trace, replayed with the page's settings.
        self.driver.find_element(By.CSS_SELECTOR, "#scenarios [data-scenario='trace']").click()
        self.wait(lambda d: "sample_trace" in d.find_element(By.ID, "trace-name").text,
                  "the sample trace did not load")
        self.simulation_settled()
        self.assertEqual(self.meters(), self.simulated(
            "--trace", SAMPLE_TRACE, "--max_replica", "10", "--concurrency_target", "4"))
        self.screenshot("simulator_trace.png")
        self.assertEqual(self.browser_errors(), [])

    def test_5_sweep_plots_the_frontier(self):
        self.open("/simulator/spike")
        self.simulation_settled()
        self.set_field("#sweep-values-1", "0,300,900")
        Select(self.driver.find_element(By.ID, "sweep-field-2")).select_by_value(
            "autoscaling_window")
        self.set_field("#sweep-values-2", "10,60")
        self.driver.find_element(By.ID, "sweep-run").click()
        self.wait(lambda d: "6 combinations" in d.find_element(By.ID, "sweep-status").text,
                  "the sweep did not finish")
        rows = self.driver.find_elements(By.CSS_SELECTOR, "#sweep-table tbody tr")
        self.assertEqual(len(rows), 6)
        frontier = self.driver.find_elements(By.CSS_SELECTOR, "#sweep-table tbody tr.frontier")
        self.assertGreaterEqual(len(frontier), 1)
        self.assertEqual(len(self.driver.find_elements(By.CSS_SELECTOR,
                                                       "#sweep-chart circle.dot")), 6)
        self.driver.execute_script("document.getElementById('sweep').scrollIntoView()")
        self.screenshot("sweep.png")
        self.assertEqual(self.browser_errors(), [])

    def test_6_sandbox_points_reshape_the_load(self):
        self.open("/simulator/sandbox")
        self.simulation_settled()
        before = self.meters()
        pattern = self.driver.find_element(By.ID, "sim-pattern").get_attribute("value")
        self.assertTrue(pattern.startswith("points:5m,1,3,8,14,"), pattern)
        # Raise the fourth point by 6 requests from the keyboard, as a user dragging it up.
        handle = self.driver.find_element(By.CSS_SELECTOR, "#sim-editor circle[data-index='3']")
        self.driver.execute_script("arguments[0].focus()", handle)
        for _ in range(6):
            self.driver.switch_to.active_element.send_keys("\ue013")  # arrow up
        self.wait(lambda d: d.find_element(By.ID, "sim-pattern").get_attribute("value")
                  .startswith("points:5m,1,3,8,20,"), "the point did not move")
        self.wait(lambda d: self.meters() != before, "the meters did not follow the shape")
        self.simulation_settled()
        reshaped = self.driver.find_element(By.ID, "sim-pattern").get_attribute("value")
        self.assertEqual(self.meters(), self.simulated(
            "--pattern", reshaped, "--duration", "60m", "--max_replica", "10",
            "--concurrency_target", "4"))
        self.assertGreater(self.meters()["replica_seconds"], before["replica_seconds"])
        self.screenshot("sandbox.png")
        self.assertEqual(self.browser_errors(), [])


if __name__ == "__main__":
    REASON = missing_browser()
    if REASON is not None:
        print("SKIPPED:", REASON)
        sys.exit(SKIP)
    unittest.main()
