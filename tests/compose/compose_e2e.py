"""End to end test of the docker compose cluster (compose.yaml), run by CI.

It makes sure a Docker engine runs (starting dockerd when none does) and that the base
images exist (pulled, or built with debootstrap and imported when no registry is
reachable), builds the images with host networking, brings the cluster up on free
loopback ports, changes settings through generated Python stubs and checks the owners'
decisions follow, kills the agent that owns production and checks the other takes it over,
restarts the control plane and checks that nothing was lost and decisions continue, brings
the agent back and checks it gets its share, then tears everything down: containers,
networks, volumes. Before that, the closed loop: the trace's HTTP requests raise
HelloWorld's decision, the actuator starts replica containers to match, the requests are
served, and after the scale-down delay the containers go back to one.
"""

import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.request
import uuid

import grpc

from chainscale.v1 import agent_pb2, agent_pb2_grpc  # noqa: E402
from chainscale.v1 import control_plane_pb2 as cp  # noqa: E402
from chainscale.v1 import control_plane_pb2_grpc as cp_grpc  # noqa: E402
from chainscale.v1 import settings_pb2  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MIRROR = "http://deb.debian.org/debian"
TIMEOUT = 20
ACCEPTED = cp.UpdateChainletEnvironmentAutoscalingSettingsResponse.ACCEPTED


def run(*args, check=True, timeout=1800, **kwargs):
    print("+ " + " ".join(args), flush=True)
    return subprocess.run(args, check=check, timeout=timeout, text=True, **kwargs)


def wait_for(predicate, timeout=120.0, interval=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def docker_ready():
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def ensure_docker():
    if docker_ready():
        return
    log_path = os.path.join(tempfile.gettempdir(), "chainscale-dockerd.log")
    with open(log_path, "w") as log:  # dockerd keeps its own copy of the descriptor
        subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True)
    if not wait_for(docker_ready, timeout=90):
        raise RuntimeError("dockerd did not start; see " + log_path)


def ensure_base_images():
    """debian:bookworm and debian:bookworm-slim: pulled, or made with debootstrap."""
    missing = [image for image in ("debian:bookworm", "debian:bookworm-slim")
               if run("docker", "image", "inspect", image, check=False,
                      capture_output=True).returncode != 0]
    for image in list(missing):
        if run("docker", "pull", image, check=False, timeout=120).returncode == 0:
            missing.remove(image)
    if not missing:
        return
    rootfs = tempfile.mkdtemp(prefix="chainscale-bookworm-")
    try:
        run("debootstrap", "--variant=minbase", "bookworm", rootfs, MIRROR,
            stdout=subprocess.DEVNULL)
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        run("docker", "import", "-", "debian:bookworm", stdin=tar.stdout,
            stdout=subprocess.DEVNULL)
        tar.wait()
        for image in missing:
            if image != "debian:bookworm":
                run("docker", "tag", "debian:bookworm", image)
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)


class Cluster:
    """docker-compose on compose.yaml with its own project name and free loopback ports."""

    def __init__(self):
        self.project = "chainscale-e2e-" + uuid.uuid4().hex[:8]
        self.env = dict(os.environ, COMPOSE_PROJECT_NAME=self.project)
        for name in ("CONTROL_PLANE_PORT", "CONTROL_PLANE_HTTP_PORT", "AGENT_1_PORT",
                     "AGENT_1_HTTP_PORT", "AGENT_2_PORT", "AGENT_2_HTTP_PORT",
                     "ACTUATOR_HTTP_PORT"):
            self.env["CHAINSCALE_" + name] = ""  # "" publishes on a free port
        keys = open(os.path.join(ROOT, "deploy", "demo.env")).read()
        self.api_key = re.search(r"^CHAINSCALE_API_KEYS=([^,\n]+)", keys, re.M).group(1)

    def compose(self, *args, **kwargs):
        return run("docker-compose", "--project-directory", ROOT, "-f",
                   os.path.join(ROOT, "compose.yaml"), *args, env=self.env, **kwargs)

    def address(self, service, port):
        out = self.compose("port", service, str(port), capture_output=True).stdout.strip()
        return out.splitlines()[-1]

    def healthy(self, service, port):
        try:
            address = self.address(service, port)
        except subprocess.CalledProcessError:
            return False
        return subprocess.run([os.environ["CHAINSCALE_HEALTH"], address],
                              capture_output=True).returncode == 0


class ComposeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        ensure_docker()
        ensure_base_images()
        cls.cluster = Cluster()
        cls.cluster.compose("build")
        try:
            cls.cluster.compose("up", "-d")
            for service, port in (("control-plane", 50051), ("agent-1", 50061),
                                  ("agent-2", 50061)):
                if not wait_for(lambda: cls.cluster.healthy(service, port), timeout=180):
                    raise RuntimeError(service + " did not become healthy")
        except Exception:
            cls.dump_and_tear_down()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.dump_and_tear_down()

    @classmethod
    def dump_and_tear_down(cls):
        cluster = getattr(cls, "cluster", None)
        if cluster is None:
            return
        cluster.compose("ps", check=False)
        cluster.compose("logs", "--tail=30", check=False)
        cluster.compose("down", "--volumes", "--remove-orphans", check=False)
        cls.cluster = None

    def auth(self):
        return (("authorization", "Api-Key " + self.cluster.api_key),)

    def control_plane(self):
        channel = grpc.insecure_channel(self.cluster.address("control-plane", 50051))
        return channel, cp_grpc.ControlPlaneStub(channel)

    def agent(self, service):
        channel = grpc.insecure_channel(self.cluster.address(service, 50061))
        return channel, agent_pb2_grpc.AgentStub(channel)

    def revision(self):
        url = "http://%s/metrics" % self.cluster.address("control-plane", 8080)
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        return int(re.search(r"^chainscale_settings_revision (\d+)$", text, re.M).group(1))

    def update(self, stub, env, chainlet, max_replica):
        request = cp.UpdateChainletEnvironmentAutoscalingSettingsRequest(
            chain_id="demo", env_name=env,
            updates=[cp.ChainletEnvironmentAutoscalingSettingsUpdate(
                chainlet_name=chainlet,
                autoscaling_settings=settings_pb2.AutoscalingSettings(max_replica=max_replica))])
        return stub.UpdateChainletEnvironmentAutoscalingSettings(request, metadata=self.auth(),
                                                                 timeout=TIMEOUT)

    def decision(self, stub, env, chainlet):
        try:
            return stub.GetScalingDecision(
                agent_pb2.GetScalingDecisionRequest(chain_id="demo", env_name=env,
                                                    chainlet_name=chainlet),
                metadata=self.auth(), timeout=TIMEOUT)
        except grpc.RpcError:
            return None

    def follows(self, env, chainlet, revision, max_replica):
        """The environment's owner decides with `revision` and stays within max_replica."""
        def check():
            owner = self.owner(env).agent_id
            if not owner:
                return False
            channel, agent = self.agent(owner)  # the agent ids are the service names
            try:
                d = self.decision(agent, env, chainlet)
            finally:
                channel.close()
            return (d is not None and d.settings_revision >= revision
                    and d.desired_replicas <= max_replica)
        return wait_for(check, timeout=60)

    def environment(self, env):
        channel, stub = self.control_plane()
        try:
            return stub.GetChainEnvironment(
                cp.GetChainEnvironmentRequest(chain_id="demo", env_name=env),
                metadata=self.auth(), timeout=TIMEOUT)
        finally:
            channel.close()

    def owner(self, env):
        try:
            return self.environment(env).owner
        except grpc.RpcError:
            return cp.EnvironmentOwner()

    def stored(self, env, chainlet):
        for c in self.environment(env).chainlet_settings:
            if c.chainlet_name == chainlet and c.HasField("decision"):
                return c.decision
        return None

    def replicas(self):
        """Running replica containers: the one Compose started and the actuator's clones."""
        out = run("docker", "ps", "-q", "--filter",
                  "label=com.docker.compose.project=" + self.cluster.project, "--filter",
                  "label=com.docker.compose.service=replica", capture_output=True).stdout
        return len(out.split())

    def loadgen_done(self):
        ids = self.cluster.compose("ps", "-q", "loadgen-production",
                                   capture_output=True).stdout.split()
        if not ids:
            return False
        state = run("docker", "inspect", "-f", "{{.State.Running}}", ids[0],
                    capture_output=True).stdout.strip()
        return state == "false"

    def test_replicas_follow_the_decisions_up_and_down(self):
        # The trace's requests raise HelloWorld's decision; the actuator starts replica
        # containers to match (the reporters beside them report what the replicas hold).
        seen = []

        def risen():
            d = self.stored("production", "HelloWorld")
            n = self.replicas()
            seen.append((d.desired_replicas if d else None, n))
            return d is not None and n >= 3 and d.desired_replicas >= n
        self.assertTrue(wait_for(risen, timeout=300, interval=2.0), "seen: %s" % seen[-20:])
        print("replicas rose: (decision, containers) %s" % seen[-5:], flush=True)

        # The trace ends (one pass): requests were served.
        def trace_done():
            d = self.stored("production", "HelloWorld")
            seen.append((d.desired_replicas if d else None, self.replicas()))
            return self.loadgen_done()
        self.assertTrue(wait_for(trace_done, timeout=300, interval=2.0))
        logs = self.cluster.compose("logs", "--no-color", "loadgen-production",
                                    capture_output=True).stdout
        summary = re.search(r"sent (\d+) requests, (\d+) answered; (.*)$", logs, re.M)
        self.assertIsNotNone(summary, logs[-3000:])
        sent, answered = int(summary.group(1)), int(summary.group(2))
        print("load: %s" % summary.group(0), flush=True)
        self.assertEqual(sent, 800)
        self.assertGreaterEqual(answered, sent * 0.95, summary.group(0))

        # After the scale-down delay the decision falls back to min_replica (1) and the
        # containers follow, newest first.
        peak = max(n for _, n in seen)

        def fallen():
            d = self.stored("production", "HelloWorld")
            n = self.replicas()
            seen.append((d.desired_replicas if d else None, n))
            return d is not None and d.desired_replicas == 1 and n == 1
        self.assertTrue(wait_for(fallen, timeout=300, interval=2.0), "seen: %s" % seen[-20:])
        print("replicas fell back: peak %d containers, now (decision, containers) %s" %
              (peak, seen[-1]), flush=True)

    def test_settings_reach_the_pool_failover_and_restart(self):
        channel, stub = self.control_plane()
        # The setup container created the demo chain; the two agents share its three
        # environments (production, development, staging).
        self.assertTrue(wait_for(lambda: self.revision() >= 4, timeout=120))
        envs = ("production", "development", "staging")
        self.assertTrue(wait_for(lambda: all(self.owner(e).agent_id for e in envs), timeout=60))
        owners = {e: self.owner(e).agent_id for e in envs}
        print("owners: %s" % owners, flush=True)
        self.assertEqual(set(owners.values()), {"agent-1", "agent-2"}, "both agents serve")

        response = self.update(stub, "production", "HelloWorld", 2)
        self.assertEqual(response.status, ACCEPTED, response.message)
        self.assertTrue(self.follows("production", "HelloWorld", self.revision(), 2))
        response = self.update(stub, "staging", "HelloWorld", 3)
        self.assertEqual(response.status, ACCEPTED, response.message)
        self.assertTrue(self.follows("staging", "HelloWorld", self.revision(), 3))

        # The owner of production dies: the other agent takes it over after the lease
        # (10 s) and its decisions are stored; the load generators, reporting to both
        # agents, keep it fed.
        victim = owners["production"]
        survivor = "agent-2" if victim == "agent-1" else "agent-1"
        old_epoch = self.owner("production").epoch
        self.assertTrue(wait_for(lambda: self.stored("production", "RandInt") is not None,
                                 timeout=60))
        self.cluster.compose("kill", victim)
        killed_at = time.monotonic()

        def taken_over():
            d = self.stored("production", "RandInt")
            return d is not None and d.agent_id == survivor and d.epoch > old_epoch
        self.assertTrue(wait_for(taken_over, timeout=90), "never taken over")
        print("%s killed; %s decided production %.1f s later (epoch %d, was %d)" %
              (victim, survivor, time.monotonic() - killed_at,
               self.stored("production", "RandInt").epoch, old_epoch), flush=True)
        self.assertEqual(self.owner("production").agent_id, survivor)
        channel.close()

        before = self.revision()
        self.cluster.compose("restart", "control-plane")
        self.assertTrue(wait_for(lambda: self.cluster.healthy("control-plane", 50051),
                                 timeout=120))
        self.assertEqual(self.revision(), before, "the revision survived the restart")
        channel, stub = self.control_plane()
        settings = {c.chainlet_name: c.autoscaling_settings
                    for c in self.environment("production").chainlet_settings}
        self.assertEqual(settings["HelloWorld"].max_replica, 2)
        self.assertEqual(settings["RandInt"].max_replica, 5)

        # The survivor reconnects by itself: an update is ACCEPTED again once it is back,
        # and its decisions follow the new settings.
        accepted = []

        def accepted_update():
            value = 3 + len(accepted) % 2  # alternate, so no attempt is UNCHANGED
            response = self.update(stub, "production", "RandInt", value)
            accepted.append(value)
            return response.status == ACCEPTED

        self.assertTrue(wait_for(accepted_update, timeout=120, interval=1.0))
        self.assertTrue(self.follows("production", "RandInt", self.revision(), accepted[-1]))

        # The dead agent comes back, takes its share again and catches up with what
        # changed while it was down.
        self.update(stub, "staging", "HelloWorld", 1)
        staging_revision = self.revision()
        self.cluster.compose("start", victim)
        self.assertTrue(wait_for(lambda: self.cluster.healthy(victim, 50061), timeout=120))
        self.assertTrue(wait_for(lambda: victim in {self.owner(e).agent_id for e in envs},
                                 timeout=60), "the returning agent got no share")
        self.assertTrue(self.follows("staging", "HelloWorld", staging_revision, 1))
        print("back: owners %s" % {e: self.owner(e).agent_id for e in envs}, flush=True)
        channel.close()

if __name__ == "__main__":
    unittest.main()
