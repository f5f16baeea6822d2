"""System test: the real control plane binary, killed with SIGKILL during a run of
updates and restarted on the same data directory, has every acknowledged update and the
same revision; SIGTERM stops it cleanly."""

import json
import os
import re
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

import grpc

sys.path.insert(0, os.path.dirname(__file__))
from chainscale_process import ControlPlane  # noqa: E402
from chainscale.v1 import control_plane_pb2 as cp  # noqa: E402
from chainscale.v1 import control_plane_pb2_grpc as cp_grpc  # noqa: E402
from chainscale.v1 import settings_pb2  # noqa: E402

API_KEY = "crash-test-key"
AUTH = (("authorization", "Bearer " + API_KEY),)
TIMEOUT = 10
CHAINLETS = ["Alpha", "Beta", "Gamma"]


def delay_request(chainlet, delay):
    return cp.UpdateChainletEnvironmentAutoscalingSettingsRequest(
        chain_id="crash", env_name="production",
        updates=[cp.ChainletEnvironmentAutoscalingSettingsUpdate(
            chainlet_name=chainlet,
            autoscaling_settings=settings_pb2.AutoscalingSettings(scale_down_delay=delay))])


def update_request(chainlet, max_replica):
    return cp.UpdateChainletEnvironmentAutoscalingSettingsRequest(
        chain_id="crash", env_name="production",
        updates=[cp.ChainletEnvironmentAutoscalingSettingsUpdate(
            chainlet_name=chainlet,
            autoscaling_settings=settings_pb2.AutoscalingSettings(max_replica=max_replica))])


class ControlPlaneCrashTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.binary = os.environ["CHAINSCALE_CONTROL_PLANE"]

    def tearDown(self):
        self.dir.cleanup()

    def connect(self, control_plane):
        channel = grpc.insecure_channel(control_plane.address)
        return channel, cp_grpc.ControlPlaneStub(channel)

    def stored_max_replicas(self, stub):
        env = stub.GetChainEnvironment(
            cp.GetChainEnvironmentRequest(chain_id="crash", env_name="production"),
            metadata=AUTH, timeout=TIMEOUT)
        return {c.chainlet_name: c.autoscaling_settings.max_replica for c in env.chainlet_settings}

    def stored_delays(self, stub):
        env = stub.GetChainEnvironment(
            cp.GetChainEnvironmentRequest(chain_id="crash", env_name="production"),
            metadata=AUTH, timeout=TIMEOUT)
        return {c.chainlet_name: c.autoscaling_settings.scale_down_delay
                for c in env.chainlet_settings}

    def test_acknowledged_updates_survive_sigkill(self):
        first = ControlPlane(self.binary, self.dir.name, API_KEY).start()
        channel, stub = self.connect(first)
        stub.CreateChain(cp.CreateChainRequest(chain_id="crash", chainlet_names=CHAINLETS),
                         metadata=AUTH, timeout=TIMEOUT)
        acknowledged = {name: 1 for name in CHAINLETS}
        for i in range(60):
            name = CHAINLETS[i % len(CHAINLETS)]
            value = 2 + i
            response = stub.UpdateChainletEnvironmentAutoscalingSettings(
                update_request(name, value), metadata=AUTH, timeout=TIMEOUT)
            self.assertEqual(response.status,
                             cp.UpdateChainletEnvironmentAutoscalingSettingsResponse.QUEUED)
            acknowledged[name] = value
        revision = first.revision()
        self.assertEqual(revision, 61)  # the chain, then one revision per update
        channel.close()
        first.kill()

        second = ControlPlane(self.binary, self.dir.name, API_KEY).start()
        try:
            channel, stub = self.connect(second)
            self.assertEqual(second.revision(), revision)
            self.assertEqual(self.stored_max_replicas(stub), acknowledged)
            # Revisions continue from where they were.
            stub.UpdateChainletEnvironmentAutoscalingSettings(
                update_request("Alpha", 500), metadata=AUTH, timeout=TIMEOUT)
            self.assertEqual(second.revision(), revision + 1)
            channel.close()
            self.assertEqual(second.terminate(), 0)
        finally:
            second.kill()

    def test_sigkill_during_a_burst_loses_no_acknowledged_update(self):
        first = ControlPlane(self.binary, self.dir.name, API_KEY).start()
        channel, stub = self.connect(first)
        stub.CreateChain(cp.CreateChainRequest(chain_id="crash", chainlet_names=CHAINLETS),
                         metadata=AUTH, timeout=TIMEOUT)
        acked = []  # (chainlet, value, revision), in order
        stop = threading.Event()

        def writer():
            value = 2
            while not stop.is_set() and value < 5000:
                name = CHAINLETS[value % len(CHAINLETS)]
                try:
                    response = stub.UpdateChainletEnvironmentAutoscalingSettings(
                        update_request(name, value), metadata=AUTH, timeout=TIMEOUT)
                except grpc.RpcError:
                    return  # the server died under us
                revision = int(re.match(r"revision (\d+) ", response.message).group(1))
                acked.append((name, value, revision))
                value += 1

        thread = threading.Thread(target=writer)
        thread.start()
        deadline = time.monotonic() + 60
        while len(acked) < 40 and time.monotonic() < deadline and thread.is_alive():
            time.sleep(0.01)
        first.kill()  # mid-burst: an update may be in flight
        stop.set()
        thread.join(timeout=30)
        channel.close()
        self.assertGreaterEqual(len(acked), 40)

        second = ControlPlane(self.binary, self.dir.name, API_KEY).start()
        try:
            channel, stub = self.connect(second)
            last_revision = acked[-1][2]
            # Every acknowledged revision is there; at most the one in flight beyond it.
            self.assertIn(second.revision(), (last_revision, last_revision + 1))
            stored = self.stored_max_replicas(stub)
            for name in CHAINLETS:
                values = [v for (n, v, _) in acked if n == name]
                self.assertGreaterEqual(stored[name], values[-1], name)
            channel.close()
        finally:
            second.kill()

    def test_twenty_rounds_of_sigkill_under_grpc_and_rest_writers(self):
        """Each round: a gRPC writer and a REST writer update their own chainlets while
        the control plane is killed with SIGKILL at a random moment; after the restart
        every acknowledged update is stored and the revision never went back."""
        import random
        rng = random.Random(20261123)
        rounds, acked_total, checked = 20, 0, 0
        revision_before = 0
        latest = {}  # chainlet -> last acknowledged value, across rounds
        for round_number in range(rounds):
            process = ControlPlane(self.binary, self.dir.name, API_KEY).start()
            self.assertGreaterEqual(process.revision(), revision_before,
                                    "round %d: revision went back" % round_number)
            channel, stub = self.connect(process)
            if round_number == 0:
                stub.CreateChain(cp.CreateChainRequest(chain_id="crash", chainlet_names=CHAINLETS),
                                 metadata=AUTH, timeout=TIMEOUT)
            stored = self.stored_delays(stub)
            for name, value in latest.items():
                self.assertGreaterEqual(stored[name], value,
                                        "round %d lost %s=%d" % (round_number, name, value))
                checked += 1
            acked = []  # (chainlet, value, revision)
            lock = threading.Lock()
            stop = threading.Event()

            def grpc_writer(name, start):
                value = start
                while not stop.is_set():
                    try:
                        response = stub.UpdateChainletEnvironmentAutoscalingSettings(
                            delay_request(name, value), metadata=AUTH, timeout=TIMEOUT)
                    except grpc.RpcError:
                        return
                    revision = int(re.match(r"revision (\d+) ", response.message).group(1))
                    with lock:
                        acked.append((name, value, revision))
                    value += 1

            def rest_writer(name, start):
                url = ("http://127.0.0.1:%d/v1/chains/crash/environments/production/"
                       "chainlet_settings/autoscaling_settings" % process.http_port)
                value = start
                while not stop.is_set():
                    body = json.dumps({"updates": [{"chainlet_name": name,
                                                    "autoscaling_settings": {
                                                        "scale_down_delay": value}}]}).encode()
                    request = urllib.request.Request(url, data=body, method="PATCH", headers={
                        "Authorization": "Api-Key " + API_KEY,
                        "Content-Type": "application/json"})
                    try:
                        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                            answer = json.loads(response.read())
                    except Exception:  # the server died under us
                        return
                    revision = int(re.match(r"revision (\d+) ", answer["message"]).group(1))
                    with lock:
                        acked.append((name, value, revision))
                    value += 1

            base = 150 * round_number  # values rise across rounds, within 0..3600
            threads = [threading.Thread(target=grpc_writer, args=("Alpha", base)),
                       threading.Thread(target=rest_writer, args=("Beta", base))]
            for t in threads:
                t.start()
            target = rng.randint(5, 40)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with lock:
                    if len(acked) >= target:
                        break
                time.sleep(0.005)
            process.kill()
            stop.set()
            for t in threads:
                t.join(timeout=30)
            channel.close()
            self.assertGreaterEqual(len(acked), target, "round %d wrote too little" % round_number)
            for name, value, revision in acked:
                latest[name] = max(latest.get(name, 0), value)
                revision_before = max(revision_before, revision)
            acked_total += len(acked)
        final = ControlPlane(self.binary, self.dir.name, API_KEY).start()
        try:
            channel, stub = self.connect(final)
            self.assertGreaterEqual(final.revision(), revision_before)
            stored = self.stored_delays(stub)
            for name, value in latest.items():
                self.assertGreaterEqual(stored[name], value)
                checked += 1
            channel.close()
        finally:
            final.kill()
        print("\ncrash/sigkill: %d rounds, %d acknowledged updates (gRPC and REST), "
              "%d checks after restarts, held %d" % (rounds, acked_total, checked, checked))

    def test_sigterm_exits_cleanly_and_keeps_the_cluster_id(self):
        first = ControlPlane(self.binary, self.dir.name, API_KEY).start()
        cluster = first.cluster_id()
        self.assertRegex(cluster, "^[0-9a-f]{32}$")
        self.assertEqual(first.terminate(), 0)
        second = ControlPlane(self.binary, self.dir.name, API_KEY).start()
        try:
            self.assertEqual(second.cluster_id(), cluster)
        finally:
            second.kill()


if __name__ == "__main__":
    unittest.main()
