"""Runs chainscale binaries as real processes for system tests.

A process is started on loopback port 0; its bound ports are read from its
"serving" log line on stderr. Every wait is bounded in time, and every process is
killed when the test ends.
"""

import os
import re
import select
import signal
import subprocess
import time
import urllib.request

SERVING = re.compile(r'msg="control plane serving" grpc=(\d+) http=(\d+)')


class ControlPlane:
    """A chainscale-control-plane process over a data directory."""

    def __init__(self, binary, data_dir, api_key, extra_args=()):
        self.binary = binary
        self.data_dir = data_dir
        self.api_key = api_key
        self.extra_args = list(extra_args)
        self.proc = None
        self.grpc_port = None
        self.http_port = None
        self.log = []

    def start(self, timeout=30.0):
        env = dict(os.environ, CHAINSCALE_API_KEYS=self.api_key)
        self.proc = subprocess.Popen(
            [self.binary, "--listen=127.0.0.1:0", "--http_listen=127.0.0.1:0",
             "--data_dir=" + self.data_dir] + self.extra_args,
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
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
                match = SERVING.search(text)
                if match:
                    self.grpc_port = int(match.group(1))
                    self.http_port = int(match.group(2))
                    return self
        self.kill()
        raise RuntimeError("control plane did not start:\n" + "\n".join(self.log))

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

    def kill(self):
        """SIGKILL: no chance to flush or close anything."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def terminate(self, timeout=15.0):
        """SIGTERM, then the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)
