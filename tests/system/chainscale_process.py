"""Runs chainscale binaries as real processes for system tests.

A process is started on loopback port 0; its bound ports are read from its
"serving" log line on stderr. Every wait is bounded in time, and every process is
killed when the test ends.
"""

import json
import os
import re
import select
import signal
import subprocess
import threading
import time
import urllib.request

SERVING = re.compile(
    r'msg="(?:control plane|agent) serving" grpc=(?P<grpc>\d+) http=(?P<http>\d+)')


class ControlPlane:
    """A chainscale-control-plane process over a data directory."""

    serving = SERVING  # the log line that gives the bound ports

    def __init__(self, binary, data_dir, api_key, extra_args=(), agent_token=""):
        self.binary = binary
        self.data_dir = data_dir
        self.api_key = api_key
        self.agent_token = agent_token
        self.extra_args = list(extra_args)
        self.proc = None
        self.grpc_port = None
        self.http_port = None
        self.log = []

    def start(self, timeout=30.0, grpc_port=0):
        """Starts the process; grpc_port 0 picks a free port, another reuses one."""
        env = dict(os.environ, CHAINSCALE_API_KEYS=self.api_key,
                   CHAINSCALE_AGENT_TOKEN=self.agent_token)
        self.log = []
        self.proc = subprocess.Popen(
            [self.binary, "--listen=127.0.0.1:%d" % grpc_port, "--http_listen=127.0.0.1:0",
             "--data_dir=" + self.data_dir] + self.extra_args,
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
        return self._await_serving(timeout)

    def _await_serving(self, timeout):
        """Reads stderr until the serving line gives the ports."""
        deadline = time.monotonic() + timeout
        buffered = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stderr], [], [], 0.5)
            if not ready:
                if self.proc.poll() is not None:
                    break
                continue
            chunk = os.read(self.proc.stderr.fileno(), 65536)
            if not chunk:
                break
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            for line in lines:
                text = line.decode(errors="replace")
                self.log.append(text)
                match = self.serving.search(text)
                if match:
                    ports = match.groupdict()
                    self.grpc_port = int(ports["grpc"]) if ports.get("grpc") else None
                    self.http_port = int(ports["http"])
                    # Keep draining stderr: a full pipe would block the process's logging.
                    threading.Thread(target=self._drain, args=(buffered,), daemon=True).start()
                    return self
        self.kill()
        raise RuntimeError("%s did not start:\n%s" % (self.binary, "\n".join(self.log)))

    def _drain(self, buffered):
        stderr = self.proc.stderr
        while True:
            chunk = os.read(stderr.fileno(), 65536)
            if not chunk:
                return
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            self.log.extend(line.decode(errors="replace") for line in lines)

    @property
    def address(self):
        return "127.0.0.1:%d" % self.grpc_port

    def metrics(self):
        url = "http://127.0.0.1:%d/metrics" % self.http_port
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()

    def cluster_id(self):
        for line in self.log:
            match = re.search(r"cluster_id=([0-9a-f]+)", line)
            if match:
                return match.group(1)
        return None

    def revision(self):
        match = re.search(r"^chainscale_settings_revision (\d+)$", self.metrics(), re.M)
        return int(match.group(1))

    def rss_bytes(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def kill(self):
        """SIGKILL: no chance to flush or close anything."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def terminate(self, timeout=15.0):
        """SIGTERM, then the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)


def create_chain(stub, metadata, chain_id, chainlet, settings, env_name="production",
                 timeout=20):
    """Creates a chain of one chainlet and gives it `settings` (a dict of
    AutoscalingSettings fields) in `env_name`, over gRPC."""
    from google.protobuf import json_format
    from chainscale.v1 import control_plane_pb2 as cp
    stub.CreateChain(cp.CreateChainRequest(chain_id=chain_id, chainlet_names=[chainlet]),
                     metadata=metadata, timeout=timeout)
    stub.UpdateChainletEnvironmentAutoscalingSettings(json_format.ParseDict({
        "chain_id": chain_id, "env_name": env_name,
        "updates": [{"chainlet_name": chainlet, "autoscaling_settings": settings}]},
        cp.UpdateChainletEnvironmentAutoscalingSettingsRequest()),
        metadata=metadata, timeout=timeout)


def wait_for(predicate, timeout=60.0, interval=0.02):
    """Polls predicate until it holds (True) or timeout passes (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


class SyncProbe:
    """A chainscale-sync-probe process: agents that print every update they apply."""

    def __init__(self, binary, address, agent_ids, token, selector=""):
        self.agent_ids = list(agent_ids)
        args = [binary, "--control_plane=" + address, "--agent_ids=" + ",".join(agent_ids),
                "--token=" + token]
        if selector:
            args.append("--selector=" + selector)
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.lock = threading.Lock()
        self.applied = {agent: [] for agent in agent_ids}
        self.stats = {}
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            record = json.loads(line)
            with self.lock:
                if "stats" in record:
                    self.stats[record["agent"]] = record["stats"]
                else:
                    self.applied[record["agent"]].append(record)

    def history(self, agent):
        with self.lock:
            return list(self.applied[agent])

    def last_revision(self, agent):
        history = self.history(agent)
        return history[-1]["revision"] if history else 0

    def state(self, agent):
        """The agent's settings as its history builds them: key -> max_replica."""
        state = {}
        for record in self.history(agent):
            if record["snapshot"]:
                state = {}
            state.update(record["upserts"])
            for key in record["removals"]:
                state.pop(key, None)
        return state

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self, timeout=30.0):
        """SIGTERM; returns the per-agent stats the probe prints on its way out."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=timeout)
        self.reader.join(timeout=timeout)
        return self.stats

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=10)


class Agent(ControlPlane):
    """A chainscale-agent process; it shares the control plane's start and stop."""

    def __init__(self, binary, control_plane_address, api_key, agent_token, extra_args=()):
        super().__init__(binary, "", api_key, extra_args=[
            "--control_plane=" + control_plane_address] + list(extra_args),
            agent_token=agent_token)

    def start(self, timeout=30.0, grpc_port=0):
        env = dict(os.environ, CHAINSCALE_API_KEYS=self.api_key,
                   CHAINSCALE_AGENT_TOKEN=self.agent_token)
        self.log = []
        self.proc = subprocess.Popen(
            [self.binary, "--listen=127.0.0.1:%d" % grpc_port, "--http_listen=127.0.0.1:0"] +
            self.extra_args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
        return self._await_serving(timeout)


class Actuator(ControlPlane):
    """A chainscale-actuator process; it has an HTTP port and no gRPC port."""

    serving = re.compile(r'msg="actuator serving" http=(?P<http>\d+)')

    def __init__(self, binary, control_plane_address, api_key, extra_args=()):
        super().__init__(binary, "", api_key, extra_args=[
            "--control_plane=" + control_plane_address] + list(extra_args))

    def start(self, timeout=30.0, grpc_port=0):
        env = dict(os.environ, CHAINSCALE_API_KEYS=self.api_key)
        self.log = []
        self.proc = subprocess.Popen(
            [self.binary, "--http_listen=127.0.0.1:0"] + self.extra_args,
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
        return self._await_serving(timeout)

    def healthz(self):
        url = "http://127.0.0.1:%d/healthz" % self.http_port
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()


class Reporter(ControlPlane):
    """A chainscale-reporter process: it has an HTTP port (/metrics, /healthz) and no gRPC
    port; `args` are its flags."""

    serving = re.compile(r'msg="reporter serving" http=(?P<http>\d+)')

    def __init__(self, binary, args, api_key):
        super().__init__(binary, "", api_key, extra_args=args)

    def start(self, timeout=30.0):
        env = dict(os.environ, CHAINSCALE_API_KEYS=self.api_key)
        self.log = []
        self.proc = subprocess.Popen(
            [self.binary, "--http_listen=127.0.0.1:0"] + self.extra_args,
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
        return self._await_serving(timeout)


class Replica(ControlPlane):
    """A chainscale-replica process: HTTP only, its key (for reports to an agent) from
    CHAINSCALE_API_KEYS."""

    serving = re.compile(r'msg="replica serving" http=(?P<http>\d+)')

    def __init__(self, binary, extra_args=(), api_key=""):
        super().__init__(binary, "", api_key, extra_args=extra_args)

    def start(self, timeout=30.0, grpc_port=0):
        env = dict(os.environ, CHAINSCALE_API_KEYS=self.api_key)
        self.log = []
        self.proc = subprocess.Popen(
            [self.binary, "--http_listen=127.0.0.1:0"] + self.extra_args,
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
        return self._await_serving(timeout)
