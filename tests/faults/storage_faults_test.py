"""Storage faults against the real control plane binary (DESIGN §5, §14).

- A full disk: with --data_dir on a small tmpfs (in a private mount namespace, so only
  when run as root), writes that would fill it are refused with RESOURCE_EXHAUSTED naming
  the disk, nothing half-written, reads keep being served, writes resume when space
  returns, and a restart on the full disk serves reads.
- Corruption is never silent: each file of a data directory (after a clean stop and after
  SIGKILL) is truncated, cut short, overwritten with garbage or deleted; every restart
  either serves exactly the last committed state or refuses to start with a message that
  says what is wrong and what to do. Never an older or empty state, never a new cluster
  id in a directory that held data.
"""

import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "system"))
from chainscale_process import ControlPlane, wait_for  # noqa: E402
from chainscale.v1 import control_plane_pb2 as cp  # noqa: E402
from chainscale.v1 import control_plane_pb2_grpc as cp_grpc  # noqa: E402
from chainscale.v1 import settings_pb2  # noqa: E402

API_KEY = "storage-fault-key"
AUTH = (("authorization", "Api-Key " + API_KEY),)
TIMEOUT = 20
CHAIN = "store"
CHAINLETS = ["C%03d" % i for i in range(300)]


def update(stub, value, chainlets=CHAINLETS):
    return stub.UpdateChainletEnvironmentAutoscalingSettings(
        cp.UpdateChainletEnvironmentAutoscalingSettingsRequest(
            chain_id=CHAIN, env_name="production",
            updates=[cp.ChainletEnvironmentAutoscalingSettingsUpdate(
                chainlet_name=name,
                autoscaling_settings=settings_pb2.AutoscalingSettings(
                    max_replica=2 + (value + i) % 900))
                for i, name in enumerate(chainlets)]),
        metadata=AUTH, timeout=TIMEOUT)


def stored_settings(stub):
    env = stub.GetChainEnvironment(
        cp.GetChainEnvironmentRequest(chain_id=CHAIN, env_name="production"),
        metadata=AUTH, timeout=TIMEOUT)
    return {c.chainlet_name: c.autoscaling_settings.max_replica for c in env.chainlet_settings}


class MountNamespace:
    """A private mount namespace holding a tmpfs: `unshare -m` runs a holder process, the
    control plane enters the namespace with nsenter, and this test reaches the tmpfs
    through /proc/HOLDER/root."""

    def __init__(self, size_mb):
        self.mountpoint = tempfile.mkdtemp(prefix="chainscale-tmpfs-")
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             "mount -t tmpfs -o size=%dm tmpfs %s && echo ready && exec sleep 3600"
             % (size_mb, self.mountpoint)],
            stdout=subprocess.PIPE, text=True)
        line = self.holder.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError("cannot mount a tmpfs in a private namespace")

    def path(self, *parts):
        """The path as this process sees it (through the holder's root)."""
        return os.path.join("/proc/%d/root" % self.holder.pid, self.mountpoint.lstrip("/"),
                            *parts)

    def inner(self, *parts):
        """The path as processes inside the namespace see it."""
        return os.path.join(self.mountpoint, *parts)

    def free_bytes(self):
        st = os.statvfs(self.path())
        return st.f_bavail * st.f_frsize

    def fill(self, leave_bytes, name="filler"):
        """Grows a filler file until only `leave_bytes` are free."""
        with open(self.path(name), "ab") as f:
            chunk = b"\0" * (1 << 20)
            while self.free_bytes() > leave_bytes + len(chunk):
                f.write(chunk)
                f.flush()
            rest = self.free_bytes() - leave_bytes
            if rest > 0:
                f.write(b"\0" * rest)

    def close(self):
        self.holder.kill()
        self.holder.wait(timeout=10)
        os.rmdir(self.mountpoint)


class NamespacedControlPlane(ControlPlane):
    """A control plane started inside the mount namespace."""

    def __init__(self, binary, namespace, data_dir):
        super().__init__(binary, data_dir, API_KEY)
        self.namespace = namespace

    def start(self, timeout=30.0, grpc_port=0):
        env = dict(os.environ, CHAINSCALE_API_KEYS=self.api_key)
        self.log = []
        self.proc = subprocess.Popen(
            ["nsenter", "-t", str(self.namespace.holder.pid), "-m", "--",
             os.path.abspath(self.binary),
             "--listen=127.0.0.1:%d" % grpc_port, "--http_listen=127.0.0.1:0",
             "--data_dir=" + self.data_dir],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
        return self._await_serving(timeout)


@unittest.skipUnless(os.geteuid() == 0, "needs root to mount a tmpfs in a private mount "
                     "namespace (run ./dev test as root)")
class DiskFullTest(unittest.TestCase):
    def setUp(self):
        self.binary = os.environ["CHAINSCALE_CONTROL_PLANE"]
        self.ns = MountNamespace(size_mb=64)
        self.processes = []

    def tearDown(self):
        for p in self.processes:
            p.kill()
        self.ns.close()

    def start(self):
        p = NamespacedControlPlane(self.binary, self.ns, self.ns.inner("data"))
        self.processes.append(p)
        return p.start()

    def test_full_disk_refuses_writes_serves_reads_and_recovers(self):
        tried = held = 0
        first = self.start()
        channel = grpc.insecure_channel(first.address)
        stub = cp_grpc.ControlPlaneStub(channel)
        stub.CreateChain(cp.CreateChainRequest(chain_id=CHAIN, chainlet_names=CHAINLETS),
                         metadata=AUTH, timeout=TIMEOUT)
        revision = first.revision()
        acked = stored_settings(stub)
        # Leave 10 MiB free, then write until the disk refuses: each update holds 300
        # chainlets, about 20 KB.
        self.ns.fill(10 << 20)
        refused = None
        for value in range(3000):
            try:
                update(stub, value)
                acked = {name: 2 + (value + i) % 900 for i, name in enumerate(CHAINLETS)}
                revision += 1
            except grpc.RpcError as e:
                refused = e
                break
        tried += 1
        self.assertIsNotNone(refused, "3000 updates of 20 KB fitted in 10 MiB")
        self.assertIsNone(first.proc.poll(), "the control plane died: %s" % first.log[-3:])
        self.assertEqual(refused.code(), grpc.StatusCode.RESOURCE_EXHAUSTED, refused.details())
        self.assertIn("--data_dir", refused.details())
        self.assertLessEqual(len(refused.details()), 1024)
        held += 1
        # Nothing half-written; reads go on.
        tried += 1
        self.assertEqual(first.revision(), revision)
        self.assertEqual(stored_settings(stub), acked)
        held += 1
        # Space returns: writes resume.
        tried += 1
        os.remove(self.ns.path("filler"))
        update(stub, 7777)
        revision += 1
        acked = {name: 2 + (7777 + i) % 900 for i, name in enumerate(CHAINLETS)}
        self.assertEqual(first.revision(), revision)
        held += 1
        channel.close()
        self.assertEqual(first.terminate(), 0)

        # A restart on a full disk serves reads; writes are refused until space returns.
        tried += 1
        self.ns.fill(1 << 20)
        second = self.start()
        channel = grpc.insecure_channel(second.address)
        stub = cp_grpc.ControlPlaneStub(channel)
        self.assertEqual(second.revision(), revision)
        self.assertEqual(stored_settings(stub), acked)
        with self.assertRaises(grpc.RpcError) as refused:
            update(stub, 1)
        self.assertEqual(refused.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        os.remove(self.ns.path("filler"))
        update(stub, 2)
        self.assertEqual(second.revision(), revision + 1)
        held += 1
        channel.close()
        print("\nstorage/disk-full: tried %d, held %d" % (tried, held))
        self.assertEqual(tried, held)


class CorruptionTest(unittest.TestCase):
    """Damages each file of a data directory in turn and restarts on it."""

    def setUp(self):
        self.binary = os.environ["CHAINSCALE_CONTROL_PLANE"]
        self.dir = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.dir.cleanup()

    def make_store(self, name, stop):
        """A data directory with a chain and 40 updates, stopped by `stop`; returns the
        directory, its revision, settings and cluster id."""
        data = os.path.join(self.dir.name, name)
        p = ControlPlane(self.binary, data, API_KEY).start()
        try:
            with grpc.insecure_channel(p.address) as channel:
                stub = cp_grpc.ControlPlaneStub(channel)
                stub.CreateChain(cp.CreateChainRequest(chain_id=CHAIN,
                                                       chainlet_names=CHAINLETS[:20]),
                                 metadata=AUTH, timeout=TIMEOUT)
                for value in range(40):
                    update(stub, value, CHAINLETS[:20])
                settings = stored_settings(stub)
            revision = p.revision()
            cluster = p.cluster_id()
            # Give the committed-revision marker a moment to catch up, as a running
            # control plane would have had.
            time.sleep(0.2)
            if stop == "kill":
                p.kill()
            else:
                self.assertEqual(p.terminate(), 0)
        finally:
            p.kill()
        return data, revision, settings, cluster

    @staticmethod
    def damages(path):
        size = os.path.getsize(path)
        yield "truncated to 0", lambda: os.truncate(path, 0)
        if size > 1:
            yield "truncated to half", lambda: os.truncate(path, size // 2)
            yield "last byte cut", lambda: os.truncate(path, size - 1)

            def garbage():
                with open(path, "r+b") as f:
                    f.seek(size // 2)
                    f.write(b"\xde\xad\xbe\xef" * min(16, max(1, (size - size // 2) // 4)))
            yield "garbage in the middle", garbage
        yield "deleted", lambda: os.remove(path)

    def restart(self, data):
        """Starts on `data`: ('serving', process) or ('refused', log lines and exit code)."""
        p = ControlPlane(self.binary, data, API_KEY)
        try:
            p.start(timeout=60)
            return "serving", p
        except RuntimeError:
            return "refused", p.log + ["exit code %s" % p.proc.returncode]

    def test_every_damaged_file_is_recovered_exactly_or_refused(self):
        tried = exact = refused = 0
        bad = []
        for stop in ("term", "kill"):
            pristine, revision, settings, cluster = self.make_store("pristine-" + stop, stop)
            kinds = {}
            for path in sorted(glob.glob(os.path.join(pristine, "*"))):
                base = os.path.basename(path)
                if base == "LOCK" or base.startswith("LOG"):
                    continue  # RocksDB's lock file and its own info log hold no data
                kind = re.sub(r"\d+", "N", base)
                kinds.setdefault(kind, base)
            for kind, base in sorted(kinds.items()):
                probe = os.path.join(self.dir.name, "probe")
                for damage_name, _ in self.damages(os.path.join(pristine, base)):
                    shutil.rmtree(probe, ignore_errors=True)
                    shutil.copytree(pristine, probe)
                    dict(self.damages(os.path.join(probe, base)))[damage_name]()
                    what = "%s after %s: %s %s" % (stop, "SIGTERM" if stop == "term" else
                                                   "SIGKILL", base, damage_name)
                    tried += 1
                    outcome, p = self.restart(probe)
                    if outcome == "refused":
                        text = "\n".join(p)
                        if "--data_dir" in text and re.search(r"restore|move it aside|backup",
                                                              text):
                            refused += 1
                        else:
                            bad.append("%s: refused without saying what to do: %s"
                                       % (what, p[-2:]))
                        continue
                    try:
                        with grpc.insecure_channel(p.address) as channel:
                            got = stored_settings(cp_grpc.ControlPlaneStub(channel))
                        problems = []
                        if p.cluster_id() != cluster:
                            problems.append("new cluster id")
                        if p.revision() != revision:
                            problems.append("revision %d, committed %d" % (p.revision(),
                                                                           revision))
                        if got != settings:
                            problems.append("settings differ")
                        if problems:
                            bad.append("%s: served %s" % (what, ", ".join(problems)))
                        else:
                            exact += 1
                    except grpc.RpcError as e:
                        bad.append("%s: served, then %s" % (what, e.code()))
                    finally:
                        p.kill()
        print("\nstorage/corruption: tried %d, held %d (%d recovered exactly, %d refused "
              "with a message)" % (tried, exact + refused, exact, refused))
        for line in bad:
            print("  NOT HELD: " + line)
        self.assertEqual(bad, [])
        self.assertGreater(tried, 30)


if __name__ == "__main__":
    unittest.main()
