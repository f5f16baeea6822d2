"""Ownership and failover with the real binaries (DESIGN §11): one control plane and
three agents that may all serve everything.

One scenario, in order, each step checked before the next:
1. Every chain environment gets exactly one owner, balanced (two of six each); reports to
   the owner are decided by it, and every decision stored over the run names the owner
   and its epoch (read from the control plane's decision feed); reports sent to another
   agent reach the owner's window (forwarded, and counted).
2. SIGKILL the owner of a loaded environment: another agent owns it within the lease TTL
   plus two decision intervals (and some slack for a loaded machine), under a higher
   epoch, and its first stored decision starts from the stored count (no replica drop).
3. A fourth agent joins: only its share moves, every move to it.
4. The control plane restarts on its data directory: the agents come back to the same
   environments under the same epochs.
5. An agent cut off from the control plane (SIGSTOP of the control plane) holds its counts
   once its own lease TTL has passed, and says so.

And a partition: one agent reaches the control plane through a TCP proxy in the test,
which stops forwarding. The cut-off owner holds; once the control plane has given up on
its stream and its lease has passed, another agent owns its environments under a higher
epoch and decides them; and over the whole run the control plane never stores a decision
of an older epoch after a newer one for any environment.

And the load generator pointed at every agent: its sources are spread over them, the
non-owner forwards, the owner decides from all of them; when one agent dies its batches go
to the next, none fail.
"""

import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc

sys.path.insert(0, os.path.dirname(__file__))
from chainscale_process import Agent, ControlPlane, create_chain, wait_for  # noqa: E402
from chainscale.v1 import agent_pb2, agent_pb2_grpc  # noqa: E402
from chainscale.v1 import control_plane_pb2 as cp  # noqa: E402
from chainscale.v1 import control_plane_pb2_grpc as cp_grpc  # noqa: E402

API_KEY = "owner-key"
TOKEN = "owner-agent-token"
AUTH = (("authorization", "Api-Key " + API_KEY),)
TIMEOUT = 20
LEASE_TTL = 2.0        # seconds, control plane and agents
INTERVAL = 0.2         # decision interval, seconds
SLACK = 3.0            # for a loaded two-core machine; the measured time is printed
CHAINS = ["own-%d" % i for i in range(6)]
IN_FLIGHT = 50         # at 10 per replica: 5 replicas


class Reporter:
    """Reports load for every chain, each to the agent that owns its environment now."""

    def __init__(self, test):
        self.test = test
        self.stop = threading.Event()
        self.refusals = {}
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            for chain in CHAINS:
                owner = self.test.owner(chain)
                agent = self.test.agents.get(owner.agent_id)
                if agent is None or agent.proc.poll() is not None:
                    continue
                try:
                    self.test.stub_of(agent).ReportLoad(agent_pb2.ReportLoadRequest(reports=[
                        agent_pb2.LoadReport(source_id="replica-1", chain_id=chain,
                                             env_name="production", chainlet_name="Model",
                                             in_flight_requests=IN_FLIGHT)]),
                        metadata=AUTH, timeout=5)
                except grpc.RpcError as e:
                    self.refusals[e.code()] = self.refusals.get(e.code(), 0) + 1
            self.stop.wait(INTERVAL)

    def close(self):
        self.stop.set()
        self.thread.join(timeout=30)


class Partition:
    """A TCP proxy to `target` that can stop forwarding: while cut, nothing is read on
    either side (bytes wait in the kernel's buffers, connections stay open), as a network
    partition looks to both ends; new connections are accepted but carry nothing."""

    def __init__(self, target):
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.address = "127.0.0.1:%d" % self.listener.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self.closed = threading.Event()
        self.sockets = []
        self.threads = [threading.Thread(target=self.accept, daemon=True)]
        self.threads[0].start()

    def cut(self):
        self.flowing.clear()

    def heal(self):
        self.flowing.set()

    def accept(self):
        while not self.closed.is_set():
            ready, _, _ = select.select([self.listener], [], [], 0.2)
            if not ready:
                continue
            client, _ = self.listener.accept()
            upstream = socket.create_connection(self.target, timeout=5)
            self.sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                t = threading.Thread(target=self.pump, args=(src, dst), daemon=True)
                t.start()
                self.threads.append(t)

    def pump(self, src, dst):
        try:
            while not self.closed.is_set():
                if not self.flowing.wait(0.2):
                    continue
                ready, _, _ = select.select([src], [], [], 0.2)
                if not ready:
                    continue
                data = src.recv(65536)
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)
        except OSError:
            pass  # the other end went away, or close() below

    def close(self):
        self.closed.set()
        for t in self.threads:
            t.join(timeout=5)
        for sock in self.sockets + [self.listener]:
            sock.close()


class Feed:
    """Every decision the control plane stores, from its decision feed."""

    def __init__(self, address):
        self.channel = grpc.insecure_channel(address)
        self.call = cp_grpc.ControlPlaneStub(self.channel).WatchScalingDecisions(
            cp.WatchDecisionFeedRequest(), metadata=AUTH)
        self.decisions = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self):
        # Only what is stored from now on: the initial state may hold decisions of an
        # assignment that has since moved on (an agent alone at first owns everything).
        live = False
        try:
            for message in self.call:
                if message.initial_state_done:
                    live = True
                if live and message.HasField("decision"):
                    with self.lock:
                        self.decisions.append(message.decision)
        except grpc.RpcError:
            pass

    def all(self):
        with self.lock:
            return list(self.decisions)

    def close(self):
        self.call.cancel()
        self.thread.join(timeout=10)
        self.channel.close()


class OwnershipTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.cp = ControlPlane(os.environ["CHAINSCALE_CONTROL_PLANE"], self.dir.name, API_KEY,
                               extra_args=["--lease_ttl=%gs" % LEASE_TTL], agent_token=TOKEN)
        self.cp.start()
        self.agents = {}
        self.stubs = {}
        self.channel = grpc.insecure_channel(self.cp.address)
        self.stub = cp_grpc.ControlPlaneStub(self.channel)
        for chain in CHAINS:
            create_chain(self.stub, AUTH, chain, "Model", {
                "min_replica": 1, "max_replica": 20, "concurrency_target": 10,
                "target_utilization_percentage": 100, "autoscaling_window": 10,
                "scale_down_delay": 600}, timeout=TIMEOUT)

    def tearDown(self):
        for agent in self.agents.values():
            if agent.proc.poll() is None:
                agent.kill()
        if self.cp.proc.poll() is None:
            self.cp.proc.send_signal(signal.SIGCONT)
            self.cp.kill()
        self.channel.close()
        self.dir.cleanup()

    def start_agent(self, name, control_plane=None):
        agent = Agent(os.environ["CHAINSCALE_AGENT"], control_plane or self.cp.address,
                      API_KEY, TOKEN,
                      ["--agent_id=" + name, "--decision_interval=%gs" % INTERVAL,
                       "--lease_ttl=%gs" % LEASE_TTL, "--report_staleness=30s"])
        agent.start()
        self.agents[name] = agent
        return agent

    def stub_of(self, agent):
        if agent.address not in self.stubs:
            self.stubs[agent.address] = agent_pb2_grpc.AgentStub(
                grpc.insecure_channel(agent.address))
        return self.stubs[agent.address]

    def env(self, chain):
        return self.stub.GetChainEnvironment(
            cp.GetChainEnvironmentRequest(chain_id=chain, env_name="production"),
            metadata=AUTH, timeout=TIMEOUT)

    def owner(self, chain):
        return self.env(chain).owner

    def owners(self):
        return {chain: (self.owner(chain).agent_id, self.owner(chain).epoch) for chain in CHAINS}

    def all_owners(self):
        """Owners of every environment of every chain (a chain has more than production)."""
        out = {}
        for chain in CHAINS:
            envs = self.stub.GetChain(cp.GetChainRequest(chain_id=chain), metadata=AUTH,
                                      timeout=TIMEOUT).environments
            for env in envs:
                owner = self.stub.GetChainEnvironment(
                    cp.GetChainEnvironmentRequest(chain_id=chain, env_name=env),
                    metadata=AUTH, timeout=TIMEOUT).owner
                out[(chain, env)] = (owner.agent_id, owner.epoch)
        return out

    def balanced(self, agents):
        counts = [sum(1 for a, _ in self.all_owners().values() if a == n) for n in agents]
        return all(a for a, _ in self.all_owners().values()) and max(counts) - min(counts) <= 1

    def stored(self, chain):
        d = self.env(chain).chainlet_settings[0]
        return d.decision if d.HasField("decision") else None

    def test_one_decider_failover_join_and_restart(self):
        for name in ("agent-a", "agent-b", "agent-c"):
            self.start_agent(name)
        # 1. One owner per environment, balanced within one.
        self.assertTrue(wait_for(lambda: self.balanced(["agent-a", "agent-b", "agent-c"]),
                                 timeout=TIMEOUT), "owners: %s" % self.all_owners())
        owners = self.owners()
        feed = Feed(self.cp.address)
        reporter = Reporter(self)
        try:
            self.assertTrue(wait_for(lambda: all(
                (self.stored(c) is not None and self.stored(c).desired_replicas == 5)
                for c in CHAINS), timeout=60), "stored: %s" % [self.stored(c) for c in CHAINS])
            decided = {c: (self.stored(c).agent_id, self.stored(c).epoch) for c in CHAINS}
            self.assertEqual(decided, owners, "each environment decided by its owner")
            # A report sent to another agent reaches the owner's window: 30 more in flight
            # from a second source make the owner decide 8 replicas. ReportLoad for one
            # chain, StreamLoad for another.
            chain, streamed = CHAINS[0], CHAINS[1]
            other = next(a for n, a in self.agents.items() if n != owners[chain][0])
            other_streamed = next(a for n, a in self.agents.items()
                                  if n != owners[streamed][0])
            extra = threading.Event()
            stream_answers = []

            def stream_elsewhere():
                def batches():
                    sequence = 0
                    while not extra.is_set():
                        sequence += 1
                        yield agent_pb2.StreamLoadRequest(sequence=sequence, reports=[
                            agent_pb2.LoadReport(source_id="replica-9", chain_id=streamed,
                                                 env_name="production", chainlet_name="Model",
                                                 in_flight_requests=30)])
                        extra.wait(INTERVAL)
                for answer in self.stub_of(other_streamed).StreamLoad(
                        batches(), metadata=AUTH, timeout=120):
                    stream_answers.append(answer)

            def report_elsewhere():
                while not extra.is_set():
                    self.stub_of(other).ReportLoad(agent_pb2.ReportLoadRequest(reports=[
                        agent_pb2.LoadReport(source_id="replica-9", chain_id=chain,
                                             env_name="production", chainlet_name="Model",
                                             in_flight_requests=30)]), metadata=AUTH, timeout=10)
                    extra.wait(INTERVAL)
            elsewhere = [threading.Thread(target=report_elsewhere, daemon=True),
                         threading.Thread(target=stream_elsewhere, daemon=True)]
            for t in elsewhere:
                t.start()
            try:
                self.assertTrue(wait_for(lambda: self.stored(chain).desired_replicas == 8 and
                                         self.stored(streamed).desired_replicas == 8,
                                         timeout=60),
                                "stored: %s" % [self.stored(chain), self.stored(streamed)])
            finally:
                extra.set()
                for t in elsewhere:
                    t.join(timeout=30)
            for c in (chain, streamed):
                self.assertEqual((self.stored(c).agent_id, self.stored(c).epoch),
                                 owners[c], "decided by the owner")
            # Every StreamLoad answer, in order, took its one report.
            self.assertEqual([(a.sequence, a.accepted, len(a.rejections))
                              for a in stream_answers],
                             [(i + 1, 1, 0) for i in range(len(stream_answers))])
            forwarded = re.search(r'^chainscale_forwarded_reports_total\{result="accepted"\} (\d+)$',
                                  other.metrics(), re.M)
            self.assertTrue(forwarded and int(forwarded.group(1)) > 0, "counted as forwarded")
            print("\nownership: %s reports sent to a non-owner reached the owner %s, which "
                  "decided 8; %d StreamLoad batches to a non-owner all taken, %s decided 8" %
                  (forwarded.group(1), owners[chain][0], len(stream_answers),
                   owners[streamed][0]))
            stored_before = [d for d in feed.all()]
            every_owner = self.all_owners()
            wrong = [d for d in stored_before
                     if (d.agent_id, d.epoch) != every_owner[(d.chain_id, d.env_name)]]
            self.assertEqual(wrong, [], "decisions stored from a non-owner")
            print("ownership: %d environments over 3 agents, balanced within one; %d "
                  "decisions stored, all by their owner" %
                  (len(self.all_owners()), len(stored_before)))

            # 2. SIGKILL the owner of a loaded environment.
            victim, old_epoch = owners[chain]
            count_before = self.stored(chain).desired_replicas
            self.agents[victim].proc.send_signal(signal.SIGKILL)
            self.agents[victim].proc.wait(timeout=10)
            killed_at = time.monotonic()

            def taken_over():
                d = self.stored(chain)
                return d is not None and d.agent_id != victim and d.epoch > old_epoch
            self.assertTrue(wait_for(taken_over, timeout=60), "never taken over")
            took = time.monotonic() - killed_at
            new_owner = self.owner(chain)
            first = [d for d in feed.all() if d.chain_id == chain and d.epoch == new_owner.epoch]
            print("ownership: SIGKILL of %s; %s decided %s %.2f s later (lease TTL %g s, "
                  "interval %g s), first stored count %d (was %d)" %
                  (victim, new_owner.agent_id, chain, took, LEASE_TTL, INTERVAL,
                   first[0].desired_replicas if first else -1, count_before))
            self.assertNotEqual(new_owner.agent_id, victim)
            self.assertGreater(new_owner.epoch, old_epoch)
            self.assertLess(took, LEASE_TTL + 2 * INTERVAL + SLACK)
            self.assertTrue(first, "the new owner's decisions reach the feed")
            self.assertGreaterEqual(min(d.desired_replicas for d in first), count_before,
                                    "no replica drop at takeover")
            # After the takeover nothing of the old epoch is stored.
            late = [d for d in feed.all()[len(stored_before):]
                    if d.chain_id == chain and d.epoch == old_epoch]
            self.assertEqual(late, [], "a decision of the old epoch after the takeover")
            survivors = self.all_owners()
            self.assertNotIn(victim, {a for a, _ in survivors.values()})

            # 3. A fourth agent joins: only its share moves.
            self.start_agent("agent-d")
            survivors_names = sorted({a for a, _ in survivors.values()} | {"agent-d"})
            self.assertTrue(wait_for(lambda: self.balanced(survivors_names), timeout=TIMEOUT))
            joined = self.all_owners()
            moved = {e for e in joined if joined[e] != survivors[e]}
            print("ownership: agent-d joined; %d of %d environments moved, all to it" %
                  (len(moved), len(joined)))
            # Its share: the environments over the agents now, rounded down or up.
            self.assertIn(len(moved), (len(joined) // len(survivors_names),
                                       -(-len(joined) // len(survivors_names))))
            for e in moved:
                self.assertEqual(joined[e][0], "agent-d", "moved between old agents: %s" % (e,))
        finally:
            reporter.close()
            feed.close()

        # 4. The control plane restarts; the agents keep their environments and epochs.
        before = self.all_owners()
        port = self.cp.grpc_port
        self.cp.kill()
        self.cp.extra_args = ["--lease_ttl=20s"]  # room for the agents' reconnect backoff
        self.cp.start(grpc_port=port)
        self.channel.close()
        self.channel = grpc.insecure_channel(self.cp.address)
        self.stub = cp_grpc.ControlPlaneStub(self.channel)
        live = [n for n, a in self.agents.items() if a.proc.poll() is None]

        def reconnected():
            metrics = self.cp.metrics()
            return all('chainscale_owned_environments{agent="%s"}' % n in metrics for n in live)
        self.assertTrue(wait_for(reconnected, timeout=60), self.cp.metrics())
        after = self.all_owners()
        print("ownership: control plane restarted; owners and epochs kept: %s" %
              (after == before))
        self.assertEqual(after, before)

        # 5. Cut off from the control plane, an owner holds once its lease TTL has passed.
        name = after[(CHAINS[0], "production")][0]
        stub = self.stub_of(self.agents[name])
        self.cp.proc.send_signal(signal.SIGSTOP)
        try:
            def holding():
                d = stub.GetScalingDecision(agent_pb2.GetScalingDecisionRequest(
                    chain_id=CHAINS[0], env_name="production", chainlet_name="Model"),
                    metadata=AUTH, timeout=5)
                return d.lease_expired and "no word from the control plane" in d.reason
            self.assertTrue(wait_for(holding, timeout=LEASE_TTL + SLACK + 5),
                            "the agent did not hold")
        finally:
            self.cp.proc.send_signal(signal.SIGCONT)
        print("ownership: %s held its counts with the control plane stopped" % name)

    def test_a_partitioned_owner_holds_and_its_old_epoch_is_never_stored_again(self):
        partition = Partition(self.cp.address)
        self.addCleanup(partition.close)
        self.start_agent("agent-a")
        self.start_agent("agent-b")
        self.start_agent("agent-c", control_plane=partition.address)
        names = ["agent-a", "agent-b", "agent-c"]
        self.assertTrue(wait_for(lambda: self.balanced(names), timeout=TIMEOUT),
                        "owners: %s" % self.all_owners())
        feed = Feed(self.cp.address)
        reporter = Reporter(self)
        try:
            self.assertTrue(wait_for(lambda: all(
                (self.stored(c) is not None and self.stored(c).desired_replicas == 5)
                for c in CHAINS), timeout=60), "stored: %s" % [self.stored(c) for c in CHAINS])
            before = self.all_owners()
            cut_off = [e for e, (a, _) in before.items() if a == "agent-c"]
            chain = next((c for c, e in cut_off if e == "production"), None)
            self.assertIsNotNone(chain, "agent-c owns no production environment: %s" % before)
            old_epoch = before[(chain, "production")][1]
            c_stub = self.stub_of(self.agents["agent-c"])

            partition.cut()
            cut_at = time.monotonic()

            def c_holds():
                d = c_stub.GetScalingDecision(agent_pb2.GetScalingDecisionRequest(
                    chain_id=chain, env_name="production", chainlet_name="Model"),
                    metadata=AUTH, timeout=5)
                return d.lease_expired
            self.assertTrue(wait_for(c_holds, timeout=LEASE_TTL + SLACK + 5),
                            "the cut-off owner did not hold")
            held_after = time.monotonic() - cut_at

            # The control plane gives up on the stream (keepalive: 10 s + 5 s), waits the
            # lease, and moves the work.
            def taken_over():
                d = self.stored(chain)
                return d is not None and d.agent_id != "agent-c" and d.epoch > old_epoch
            self.assertTrue(wait_for(taken_over, timeout=60, interval=0.2), "never taken over")
            moved_after = time.monotonic() - cut_at
            taker = self.stored(chain)
            self.assertGreaterEqual(taker.desired_replicas, 5, "no replica drop")
            # The cut-off agent still holds, and says why.
            d = c_stub.GetScalingDecision(agent_pb2.GetScalingDecisionRequest(
                chain_id=chain, env_name="production", chainlet_name="Model"),
                metadata=AUTH, timeout=5)
            self.assertTrue(d.lease_expired and "no word from the control plane" in d.reason,
                            d)

            # Healed: agent-c comes back; whatever it sends of its old epoch is fenced.
            partition.heal()
            self.assertTrue(wait_for(lambda: self.balanced(names), timeout=60),
                            "owners after the heal: %s" % self.all_owners())
            self.assertTrue(wait_for(lambda: not c_holds(), timeout=TIMEOUT),
                            "agent-c still holds after the heal")
            after = self.all_owners()
        finally:
            reporter.close()
            feed.close()

        stored = feed.all()
        backwards = []
        newest = {}
        for d in stored:
            env = (d.chain_id, d.env_name)
            if d.epoch < newest.get(env, 0):
                backwards.append((env, d.epoch, newest[env]))
            newest[env] = max(newest.get(env, 0), d.epoch)
        refused = re.search(r"^chainscale_decisions_refused_total (\d+)$", self.cp.metrics(),
                            re.M)
        print("\nownership/partition: agent-c cut off owning %d environments; it held after "
              "%.1f s, %s/production was decided by %s under epoch %d (was %d) %.1f s after the "
              "cut; after the heal agent-c owns %d; %d decisions stored, %d of an older epoch "
              "after a newer one; %s refused by the control plane" %
              (len(cut_off), held_after, chain, taker.agent_id, taker.epoch, old_epoch,
               moved_after,
               sum(1 for a, _ in after.values() if a == "agent-c"), len(stored),
               len(backwards), refused.group(1) if refused else "?"))
        self.assertEqual(backwards, [], "decisions stored under an older epoch")
        self.assertGreater(len(stored), 0)

    def test_the_load_generator_spreads_sources_over_every_agent(self):
        a = self.start_agent("agent-a")
        b = self.start_agent("agent-b")
        self.assertTrue(wait_for(lambda: self.balanced(["agent-a", "agent-b"]), timeout=TIMEOUT))
        chain = CHAINS[0]
        owner = self.owner(chain).agent_id
        other = b if owner == "agent-a" else a
        log = tempfile.TemporaryFile()
        self.addCleanup(log.close)
        # 4 sources sharing 40 in flight at 10 per replica: 4 replicas, only if the
        # reports of both agents reach the owner.
        loadgen = subprocess.Popen(
            [os.environ["CHAINSCALE_LOADGEN"], "--agent=%s,%s" % (a.address, b.address),
             "--api_key=" + API_KEY, "--chain_id=" + chain, "--chainlets=Model", "--sources=4",
             "--pattern=constant:40", "--report_interval=%gs" % INTERVAL, "--duration=120s"],
            stdout=log, stderr=subprocess.STDOUT)

        def stop_loadgen():
            if loadgen.poll() is None:
                loadgen.send_signal(signal.SIGTERM)
                loadgen.wait(timeout=10)
        self.addCleanup(stop_loadgen)

        def output():
            log.seek(0)
            return log.read().decode(errors="replace")
        self.assertTrue(wait_for(lambda: self.stored(chain) is not None and
                                 self.stored(chain).desired_replicas == 4, timeout=60),
                        "stored: %s\n%s" % (self.stored(chain), output()))
        forwarded = re.search(r'^chainscale_forwarded_reports_total\{result="accepted"\} (\d+)$',
                              other.metrics(), re.M)
        self.assertTrue(forwarded and int(forwarded.group(1)) > 0, other.metrics())
        # The non-owner dies: its batches go to the owner; none fails.
        other.kill()
        self.assertTrue(wait_for(lambda: output().count("could not take a batch") >= 3,
                                 timeout=30), output())
        stop_loadgen()
        summary = re.search(r"sent (\d+) reports, (\d+) failed batches", output())
        print("\nownership/loadgen: 4 sources over 2 agents; %s forwarded by the non-owner, "
              "the owner decided 4; after the non-owner's SIGKILL %d batches went to the "
              "next agent; %s" % (forwarded.group(1), output().count("could not take a batch"),
                                  summary.group(0) if summary else output()))
        self.assertIsNotNone(summary, output())
        self.assertEqual(summary.group(2), "0")
        self.assertNotIn("report failed", output())
        self.assertEqual(self.stored(chain).desired_replicas, 4)


if __name__ == "__main__":
    unittest.main()
