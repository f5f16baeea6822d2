"""Sync robustness with real processes, in the spirit of etcd's watch robustness tests.

The control plane binary and probe agents (chainscale-sync-probe, which print every
update they apply) run as processes. Every acknowledged update is recorded with its
revision; each agent's history is then checked to be ordered and unique (strictly rising
revisions), gap-free and atomic (each acknowledged revision applied once with exactly its
update, or covered by a later snapshot), and to converge to exactly the stored state.
"""

import os
import re
import sys
import tempfile
import threading
import unittest

import grpc

sys.path.insert(0, os.path.dirname(__file__))
from chainscale_process import ControlPlane, SyncProbe, wait_for  # noqa: E402
from chainscale.v1 import control_plane_pb2 as cp  # noqa: E402
from chainscale.v1 import control_plane_pb2_grpc as cp_grpc  # noqa: E402
from chainscale.v1 import settings_pb2  # noqa: E402

API_KEY = "robustness-key"
TOKEN = "robustness-agent-token"
AUTH = (("authorization", "Api-Key " + API_KEY),)
TIMEOUT = 20
CHAINLETS = ["A", "B", "C", "D"]
Response = cp.UpdateChainletEnvironmentAutoscalingSettingsResponse


class Writer:
    """Updates max_replica of chainlets of one chain's production environment and records
    what was acknowledged."""

    def __init__(self, address, chain="robust"):
        self.channel = grpc.insecure_channel(address)
        self.stub = cp_grpc.ControlPlaneStub(self.channel)
        self.chain = chain
        self.acked = []  # (revision, {key: max_replica}) per acknowledged request
        self.value = 2

    def update(self, *chainlets):
        """One request setting every named chainlet to the next value."""
        request = cp.UpdateChainletEnvironmentAutoscalingSettingsRequest(
            chain_id=self.chain, env_name="production",
            updates=[cp.ChainletEnvironmentAutoscalingSettingsUpdate(
                chainlet_name=chainlet,
                autoscaling_settings=settings_pb2.AutoscalingSettings(max_replica=self.value))
                for chainlet in chainlets])
        response = self.stub.UpdateChainletEnvironmentAutoscalingSettings(
            request, metadata=AUTH, timeout=TIMEOUT)
        revision = int(re.match(r"revision (\d+) ", response.message).group(1))
        self.acked.append((revision, {"%s/production/%s" % (self.chain, c): self.value
                                      for c in chainlets}))
        self.value += 1
        return response

    def run(self, count):
        for i in range(count):
            self.update(CHAINLETS[i % len(CHAINLETS)])

    def run_until_error(self, stop, limit):
        """Writes until the server goes away, `stop` is set, or `limit` updates."""
        for i in range(limit):
            if stop.is_set():
                return
            try:
                self.update(CHAINLETS[i % len(CHAINLETS)])
            except grpc.RpcError:
                return

    def close(self):
        self.channel.close()


class SyncRobustnessTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.processes = []

    def tearDown(self):
        for process in self.processes:
            process.kill()
        self.dir.cleanup()

    def start_control_plane(self, grpc_port=0, extra_args=()):
        # Each update writes a fresh max_replica value, so allow large ones.
        control_plane = ControlPlane(os.environ["CHAINSCALE_CONTROL_PLANE"], self.dir.name,
                                     API_KEY, extra_args=["--max_replica_limit=1000000"] +
                                     list(extra_args), agent_token=TOKEN)
        control_plane.start(grpc_port=grpc_port)
        self.processes.append(control_plane)
        return control_plane

    def start_probe(self, address, agents):
        probe = SyncProbe(os.environ["CHAINSCALE_SYNC_PROBE"], address, agents, TOKEN)
        self.processes.append(probe)
        return probe

    def create_chain(self, address, chain="robust", chainlets=CHAINLETS):
        with grpc.insecure_channel(address) as channel:
            cp_grpc.ControlPlaneStub(channel).CreateChain(
                cp.CreateChainRequest(chain_id=chain, chainlet_names=chainlets),
                metadata=AUTH, timeout=TIMEOUT)

    def stored_state(self, address):
        """key -> max_replica of every chainlet of every chain and environment."""
        state = {}
        with grpc.insecure_channel(address) as channel:
            stub = cp_grpc.ControlPlaneStub(channel)
            chains = stub.ListChains(cp.ListChainsRequest(page_size=1000), metadata=AUTH,
                                     timeout=TIMEOUT).chains
            for chain in chains:
                for env in chain.environments:
                    response = stub.GetChainEnvironment(
                        cp.GetChainEnvironmentRequest(chain_id=chain.chain_id, env_name=env),
                        metadata=AUTH, timeout=TIMEOUT)
                    for c in response.chainlet_settings:
                        state["%s/%s/%s" % (chain.chain_id, env, c.chainlet_name)] = \
                            c.autoscaling_settings.max_replica
        return state

    def assert_valid_history(self, probe, agent, acked):
        history = probe.history(agent)
        self.assertTrue(history, agent)
        self.assertTrue(history[0]["snapshot"], "%s: the first apply must be a snapshot" % agent)
        revisions = [record["revision"] for record in history]
        self.assertEqual(revisions, sorted(set(revisions)),
                         "%s: revisions must strictly increase" % agent)
        changes = {r["revision"]: r for r in history if not r["snapshot"]}
        snapshots = [r["revision"] for r in history if r["snapshot"]]
        for revision, upserts in acked:
            if revision in changes:
                self.assertEqual(changes[revision]["upserts"], upserts,
                                 "%s: revision %d not applied whole" % (agent, revision))
            else:
                # Not applied as a change: only allowed if a snapshot taken at or after
                # it covers it, and no change after it was applied before that snapshot.
                covering = [s for s in snapshots if s >= revision]
                self.assertTrue(covering, "%s: revision %d missing" % (agent, revision))
                applied_before = [r for r in changes if revision < r < covering[0]]
                self.assertEqual(applied_before, [],
                                 "%s: gap at revision %d" % (agent, revision))

    def test_control_plane_sigkill_during_a_burst(self):
        first = self.start_control_plane()
        port = first.grpc_port
        self.create_chain(first.address)
        probe = self.start_probe(first.address, ["agent-1", "agent-2", "agent-3"])
        writer = Writer(first.address)
        stop = threading.Event()
        thread = threading.Thread(target=writer.run_until_error, args=(stop, 2000))
        thread.start()
        self.assertTrue(wait_for(lambda: len(writer.acked) >= 150))
        first.kill()
        thread.join(timeout=60)
        writer.close()
        before_kill = writer.acked
        last_acked = before_kill[-1][0]

        second = self.start_control_plane(grpc_port=port)
        self.assertIn(second.revision(), (last_acked, last_acked + 1),
                      "the revision never goes back and keeps every acknowledged update")
        writer = Writer(second.address)
        writer.value = 10000
        writer.run(40)
        final = second.revision()
        agents = ["agent-1", "agent-2", "agent-3"]
        self.assertTrue(wait_for(lambda: all(probe.last_revision(a) >= final for a in agents)))
        stored = self.stored_state(second.address)
        stats = probe.stop()
        for agent in agents:
            self.assertEqual(probe.state(agent), stored, agent)
            self.assertEqual(stats[agent]["rejected"], 0, agent)
            self.assert_valid_history(probe, agent, before_kill + writer.acked)
        writer.close()

    def test_a_stopped_agent_neither_blocks_nor_costs_memory_and_then_converges(self):
        control_plane = self.start_control_plane(
            extra_args=["--ack_timeout=1ms", "--log_retention=200"])
        wide = ["C%03d" % i for i in range(200)]
        self.create_chain(control_plane.address, "wide", wide)
        healthy = self.start_probe(control_plane.address, ["healthy"])
        stopped = self.start_probe(control_plane.address, ["stopped"])
        self.assertTrue(wait_for(lambda: healthy.last_revision("healthy") >= 1 and
                                 stopped.last_revision("stopped") >= 1))
        stopped.pause()
        rss_before = control_plane.rss_bytes()
        # About 14 KB a revision, 1500 revisions: far more than the socket and HTTP/2
        # buffers between the control plane and the stopped agent can hold.
        writer = Writer(control_plane.address, chain="wide")
        for _ in range(1500):
            writer.update(*wide)
        last = writer.acked[-1][0]
        # The healthy agent kept up while the other was stopped.
        self.assertTrue(wait_for(lambda: healthy.last_revision("healthy") >= last))
        rss_after = control_plane.rss_bytes()
        metrics = control_plane.metrics()
        match = re.search(r'^chainscale_sync_buffered_bytes\{agent="stopped"\} (\d+)$',
                          metrics, re.M)
        if match:
            buffered = int(match.group(1))
            lag = int(re.search(r'^chainscale_sync_lag_revisions\{agent="stopped"\} (\d+)$',
                                metrics, re.M).group(1))
            print("stopped agent %d revisions behind, %d bytes buffered for it; control "
                  "plane RSS %.1f -> %.1f MiB (the store's memtable included)"
                  % (lag, buffered, rss_before / 2**20, rss_after / 2**20))
            self.assertGreater(lag, 100, "the stopped agent fell behind")
            # Per-stream memory is bounded by one log read (1 MiB and one change), however
            # far behind the agent is.
            self.assertLessEqual(buffered, (1 << 20) + 64 * 1024)
        else:
            print("control plane RSS %.1f -> %.1f MiB" % (rss_before / 2**20, rss_after / 2**20))
            # Stopped long enough (a slow build), its connection stops answering HTTP/2
            # pings and gRPC drops it: nothing at all is held for it then.
            self.assertTrue(any('msg="agent unsubscribed" agent_id=stopped' in line
                                for line in control_plane.log), control_plane.log[-20:])
        # RSS is reported, not asserted: it includes the store's memtable, and sanitizer
        # builds multiply it.
        self.assertLess(stopped.last_revision("stopped"), last)
        stopped.resume()
        self.assertTrue(wait_for(lambda: stopped.last_revision("stopped") >= last))
        stored = self.stored_state(control_plane.address)
        healthy_stats = healthy.stop()
        stopped_stats = stopped.stop()
        self.assertEqual(healthy.state("healthy"), stored)
        self.assertEqual(stopped.state("stopped"), stored)
        self.assert_valid_history(healthy, "healthy", writer.acked)
        self.assert_valid_history(stopped, "stopped", writer.acked)
        self.assertEqual(healthy_stats["healthy"]["snapshots"], 1)
        # It fell behind the 200-revision log: it came back by snapshot.
        self.assertGreaterEqual(stopped_stats["stopped"]["snapshots"], 2)
        writer.close()

    def test_many_agents_reconnect_at_once_after_a_restart(self):
        first = self.start_control_plane()
        port = first.grpc_port
        self.create_chain(first.address)
        agents = ["agent-%02d" % i for i in range(24)]
        probe = self.start_probe(first.address, agents)
        writer = Writer(first.address)
        writer.run(20)
        self.assertTrue(wait_for(lambda: all(probe.last_revision(a) >= writer.acked[-1][0]
                                             for a in agents)))
        self.assertEqual(first.terminate(), 0)
        second = self.start_control_plane(grpc_port=port)
        writer.close()
        writer = Writer(second.address)
        writer.value = 5000
        writer.run(20)
        last = writer.acked[-1][0]
        self.assertTrue(wait_for(lambda: all(probe.last_revision(a) >= last for a in agents)))
        stored = self.stored_state(second.address)
        stats = probe.stop()
        for agent in agents:
            self.assertEqual(probe.state(agent), stored, agent)
            self.assertEqual(stats[agent]["snapshots"], 1, "%s resumed from the log" % agent)
            self.assertGreaterEqual(stats[agent]["streams"], 2, agent)
        writer.close()


if __name__ == "__main__":
    unittest.main()
