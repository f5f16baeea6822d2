#!/usr/bin/env python3
"""What users get: chainscale's real binaries measured beside their references.

Starts the control plane, agents, sync probes, a bare gRPC stream server and etcd as
processes on loopback (ports picked by the kernel), drives them with
chainscale-bench-driver and etcd_bench (one connection per client), repeats the whole set
--runs times and prints, for each measure, the median run: chainscale's number, its
reference from the same run, and their ratio.

    bench/run.py --build build            # the full set, 3 runs (./dev bench)
    bench/run.py --build build --quick    # one short run, 10 000 chainlets (./dev bench --quick)
    bench/run.py --only writes,ingest     # some groups: writes propagation streams scale ingest forwarding idle failover closed-loop

Numbers from a shared machine are noisy; the ratios, taken within one run, are what to
compare across versions.
"""

import argparse
import datetime
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

GROUPS = ["writes", "propagation", "streams", "scale", "ingest", "forwarding", "idle",
          "failover", "closed-loop"]


def log(message):
    print(f"==> {message}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.control_plane_bin = os.path.join(self.build, "control_plane/chainscale-control-plane")
        self.agent_bin = os.path.join(self.build, "agent/chainscale-agent")
        self.probe_bin = os.path.join(self.build, "tests/chainscale-sync-probe")
        self.driver_bin = os.path.join(self.build, "bench/chainscale-bench-driver")
        self.bare_bin = os.path.join(self.build, "bench/bare-stream-server")
        self.etcd_bench_bin = os.path.join(self.build, "bench/etcd_bench")
        self.replica_bin = os.path.join(self.build, "tools/chainscale-replica")
        self.actuator_bin = os.path.join(self.build, "tools/chainscale-actuator")
        self.loadgen_bin = os.path.join(self.build, "tools/chainscale-loadgen")
        self.cli_bin = os.path.join(self.build, "tools/chainscale")
        self.work = tempfile.mkdtemp(prefix="run-", dir=self._data_root())
        self.procs = []
        self.counter = 0

    def _data_root(self):
        # Under the build directory, on the disk the project lives on: /tmp may be a tmpfs,
        # where fsync costs nothing.
        root = os.path.join(self.build, "bench-data")
        os.makedirs(root, exist_ok=True)
        return root

    def fresh_dir(self, name):
        self.counter += 1
        path = os.path.join(self.work, f"{name}-{self.counter}")
        os.makedirs(path)
        return path

    # ---- processes -------------------------------------------------------------------

    def spawn(self, argv, name, stdout=None):
        logfile = open(os.path.join(self.work, f"{name}-{len(self.procs)}.log"), "w+")
        proc = subprocess.Popen(argv, stdout=stdout or subprocess.DEVNULL, stderr=logfile,
                                start_new_session=True)
        proc.logfile = logfile
        proc.name = name
        self.procs.append(proc)
        return proc

    def stop(self, proc, timeout=15):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self):
        for proc in list(self.procs):
            self.stop(proc)

    def ports(self, proc, deadline_s=60):
        """The gRPC and HTTP ports a chainscale process logs when it starts serving."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            proc.logfile.seek(0)
            match = re.search(r"grpc=(\d+) http=(\d+)", proc.logfile.read())
            if match:
                return int(match.group(1)), int(match.group(2))
            if proc.poll() is not None:
                break
            time.sleep(0.02)
        proc.logfile.seek(0)
        raise RuntimeError(f"{proc.name} did not start:\n{proc.logfile.read()[-3000:]}")

    def driver(self, mode, **flags):
        argv = [self.driver_bin, f"--mode={mode}"] + [f"--{k}={v}" for k, v in flags.items()]
        return run_for_json(argv, f"driver {mode}", timeout=1800)

    def control_plane(self, ack_timeout="2s"):
        proc = self.spawn([self.control_plane_bin, "--insecure", "--listen=127.0.0.1:0",
                           "--http_listen=", f"--data_dir={self.fresh_dir('cp')}",
                           f"--ack_timeout={ack_timeout}"], "control-plane")
        grpc_port, _ = self.ports(proc)
        address = f"127.0.0.1:{grpc_port}"
        self.driver("wait-serving", target=address)
        return proc, address

    def agent(self, control_plane, agent_id, wait=True, extra=()):
        proc = self.spawn([self.agent_bin, "--insecure", "--listen=127.0.0.1:0",
                           "--http_listen=127.0.0.1:0", f"--control_plane={control_plane}",
                           f"--agent_id={agent_id}"] + list(extra), "agent")
        grpc_port, http_port = self.ports(proc)
        address = f"127.0.0.1:{grpc_port}"
        if wait:
            self.driver("wait-serving", target=address, timeout=300)
        return proc, address, f"127.0.0.1:{http_port}"

    def probe(self, control_plane, count, prefix, selector=""):
        """chainscale-sync-probe with `count` agents, each on its own connection; returns the
        process and the file its applied-update lines go to."""
        path = os.path.join(self.work, f"probe-{prefix}{self.counter}.jsonl")
        self.counter += 1
        out = open(path, "w")
        proc = self.spawn([self.probe_bin, f"--control_plane={control_plane}",
                           f"--agent_count={count}", f"--agent_prefix={prefix}",
                           f"--selector={selector}", "--connection_per_agent", "--timestamps",
                           "--counts_only"], "probe", stdout=out)
        proc.outpath = path
        return proc

    @staticmethod
    def probe_lines(proc):
        lines = []
        with open(proc.outpath) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        lines.append(json.loads(line))
                    except ValueError:
                        pass  # a line being written
        return [l for l in lines if "revision" in l]

    def wait_snapshots(self, proc, count, timeout=300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            snaps = [l for l in self.probe_lines(proc) if l["snapshot"]]
            if len({l["agent"] for l in snaps}) >= count:
                return snaps
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"probe agents did not all take a snapshot in {timeout} s")

    def etcd(self):
        client_port, peer_port = free_port(), free_port()
        data = self.fresh_dir("etcd")
        proc = self.spawn(["etcd", f"--data-dir={data}", "--name=bench",
                           f"--listen-client-urls=http://127.0.0.1:{client_port}",
                           f"--advertise-client-urls=http://127.0.0.1:{client_port}",
                           f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                           f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                           f"--initial-cluster=bench=http://127.0.0.1:{peer_port}",
                           "--log-level=error"], "etcd")
        endpoint = f"127.0.0.1:{client_port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", client_port), timeout=1).close()
                self.etcd_run(endpoint, mode="put", clients=1, duration="200ms")
                return proc, endpoint
            except (OSError, RuntimeError):
                time.sleep(0.2)
        raise RuntimeError("etcd did not start")

    def etcd_run(self, endpoint, **flags):
        argv = [self.etcd_bench_bin, f"-endpoint={endpoint}"] + [f"-{k}={v}" for k, v in flags.items()]
        return run_for_json(argv, "etcd_bench", timeout=900)

    # ---- measures --------------------------------------------------------------------

    def writes(self):
        """Durable writes/s and latency at 1 and 8 clients, beside etcd's put."""
        seconds = 3 if self.args.quick else 10
        rows = {}
        cp, address = self.control_plane()
        etcd, endpoint = self.etcd()
        for clients in (1, 8):
            ours = self.driver("writes", control_plane=address, clients=clients, seconds=seconds)
            ref = self.etcd_run(endpoint, mode="put", clients=clients, duration=f"{seconds}s")
            rows[f"writes/s, {clients} client(s), own environments"] = (
                ours["ops_per_s"], ref["ops_per_s"], "/s", "higher")
            rows[f"write p50, {clients} client(s)"] = (ours["p50_ms"], ref["p50_ms"], "ms", "lower")
            rows[f"write p99, {clients} client(s)"] = (ours["p99_ms"], ref["p99_ms"], "ms", "lower")
        one = self.driver("writes", control_plane=address, clients=8, seconds=seconds,
                          one_environment="true")
        ref = self.etcd_run(endpoint, mode="put", clients=8, duration=f"{seconds}s")
        rows["writes/s, 8 clients, ONE environment"] = (one["ops_per_s"], ref["ops_per_s"], "/s",
                                                        "higher")
        rows["write p99, 8 clients, ONE environment"] = (one["p99_ms"], ref["p99_ms"], "ms", "lower")
        self.stop(etcd)
        self.stop(cp)
        return rows

    def propagation(self):
        """Update -> applied by every agent, beside etcd put -> every watcher has it."""
        rows = {}
        cp, address = self.control_plane(ack_timeout="10s")
        self.driver("fill", control_plane=address, chain_prefix="prop-", chains=1,
                    chainlets_per_chain=1)
        etcd, endpoint = self.etcd()
        for agents in (1, 8, 100):
            updates = (50 if self.args.quick else 200) if agents == 100 else (
                100 if self.args.quick else 500)
            probe = self.probe(address, agents, f"p{agents}-", selector="prop-0/production")
            snaps = self.wait_snapshots(probe, agents)
            base = max(s["revision"] for s in snaps)
            records = os.path.join(self.work, f"prop-{agents}.txt")
            ours = self.driver("updates", control_plane=address, chain="prop-0", count=updates,
                               records=records)
            self.stop(probe)
            applied = {}
            for line in self.probe_lines(probe):
                if line["revision"] > base and not line["snapshot"]:
                    applied.setdefault(line["revision"], []).append(line["applied_ns"])
            starts = [int(l.split()[0]) for l in open(records)]
            latencies = []
            for i, start in enumerate(starts):
                times = applied.get(base + 1 + i, [])
                if len(times) == agents:
                    latencies.append((max(times) - start) / 1e6)
            if len(latencies) < len(starts):
                log(f"propagation: {len(starts) - len(latencies)} of {len(starts)} updates "
                    f"not applied by all {agents} agents")
            ref = self.etcd_run(endpoint, mode="watch", watchers=agents, updates=updates)
            p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
            rows[f"update -> applied p50, {agents} agent(s)"] = (p50, ref["p50_ms"], "ms", "lower")
            rows[f"update -> applied p99, {agents} agent(s)"] = (p99, ref["p99_ms"], "ms", "lower")
            accepted = ours.get("status_ACCEPTED", 0)
            if accepted != updates:
                log(f"propagation: {accepted} of {updates} updates ACCEPTED at {agents} agents")
        self.stop(etcd)
        self.stop(cp)
        return rows

    def streams(self):
        """Update latency (answered ACCEPTED by one subscribed agent) against the number of
        Sync streams connected; the others serve another chain. Reference: 1 stream."""
        rows = {}
        updates = 100 if self.args.quick else 300
        base = None
        for streams in (1, 10, 100, 1000):
            cp, address = self.control_plane()
            self.driver("fill", control_plane=address, chain_prefix="target-", chains=1,
                        chainlets_per_chain=1)
            self.driver("fill", control_plane=address, chain_prefix="other-", chains=1,
                        chainlets_per_chain=1)
            subscribed = self.probe(address, 1, "subscribed-", selector="target-0/production")
            others = None
            if streams > 1:
                others = self.probe(address, streams - 1, "other-", selector="other-0/production")
                self.wait_snapshots(others, streams - 1)
            self.wait_snapshots(subscribed, 1)
            ours = self.driver("updates", control_plane=address, chain="target-0", count=updates)
            if ours.get("status_ACCEPTED", 0) != updates:
                log(f"streams: {ours.get('status_ACCEPTED', 0)} of {updates} ACCEPTED at {streams}")
            if base is None:
                base = ours
            rows[f"update p50, {streams} Sync stream(s)"] = (ours["p50_ms"], base["p50_ms"], "ms",
                                                             "lower")
            rows[f"update p99, {streams} Sync stream(s)"] = (ours["p99_ms"], base["p99_ms"], "ms",
                                                             "lower")
            for p in (subscribed, others):
                if p is not None:
                    self.stop(p)
            self.stop(cp)
        return rows

    def scale(self):
        """100 000 chainlets (10 000 with --quick): agent RSS per chainlet, ReportLoad during
        ticks and scrapes, agent start -> SERVING, and writes while a new agent takes a
        snapshot."""
        rows = {}
        chains, per_chain = (10, 500) if self.args.quick else (100, 500)
        total = chains * per_chain * 2
        label = f"{total // 1000}k chainlets"
        feed_seconds = 3 if self.args.quick else 5
        for window in (60, 3600):
            cp, address = self.control_plane()
            agent, agent_address, metrics = self.agent(address, f"rss-{window}")
            time.sleep(1)
            rss_before = rss_bytes(agent.pid)
            self.driver("fill", control_plane=address, chain_prefix="s", chains=chains,
                        chainlets_per_chain=per_chain, clients=4, window=window)
            self.driver("wait-chainlet", target=agent_address, chain=f"s{chains - 1}",
                        env="development", chainlet=f"c{per_chain - 1}", timeout=300)
            # Three sources per chainlet report, each about once a second.
            self.driver("stream-load", target=agent_address, streams=4, chain_prefix="s",
                        chains=chains, chainlets_per_chain=per_chain, sources=3, batch=64,
                        rate=3 * total, seconds=feed_seconds)
            time.sleep(1)
            rss_after = rss_bytes(agent.pid)
            per = (rss_after - rss_before) / total
            rows[f"agent RSS with {label}, {window} s window (no reference)"] = (
                rss_after / 1e6, None, "MB", "lower")
            goal = 1536 if window == 60 else 8192
            rows[f"agent RSS per chainlet, {window} s window, {label} (goal)"] = (
                per, goal, "B", "lower")
            if window == 3600:
                self.stop(agent)
                self.stop(cp)
                break
            # ReportLoad latency between and during ticks, then with /metrics scrapes.
            self.driver("fill", control_plane=address, chain_prefix="zz-tick-", chains=1,
                        chainlets_per_chain=1)
            seconds = 8 if self.args.quick else 20
            common = dict(target=agent_address, chain_prefix="s", chains=chains,
                          chainlets_per_chain=per_chain, sources=1, batch=64, rate=total,
                          tick_chain="zz-tick-0", seconds=seconds)
            ticks = self.driver("report-latency", **common)
            log(f"report-latency: {ticks['ticks_seen']} ticks seen (median span {ticks['tick_p50_span_ms']:.0f} ms), "
                f"{ticks['tick_count']} calls during ticks, {ticks['between_count']} between, "
                f"{ticks['feeder_reports']} reports fed")
            rows[f"ReportLoad p50 during tick vs between, {label}"] = (
                ticks["tick_p50_ms"], ticks["between_p50_ms"], "ms", "lower")
            rows[f"ReportLoad p99 during tick vs between, {label}"] = (
                ticks["tick_p99_ms"], ticks["between_p99_ms"], "ms", "lower")
            rows[f"slowest ReportLoad per second (median) vs p99 between, {label}"] = (
                ticks["slowest_per_second_median_ms"], ticks["between_p99_ms"], "ms", "lower")
            rows[f"longest decision tick seen, {label} (no reference)"] = (
                ticks["longest_tick_ms"], None, "ms", "lower")
            scrapes = self.driver("report-latency", metrics_address=metrics, scrape_every=2,
                                  **common)
            rows[f"ReportLoad max during /metrics scrape vs between p99, {label}"] = (
                scrapes["scrape_max_ms"], scrapes["between_p99_ms"], "ms", "lower")
            self.stop(agent)

            # A new agent: start -> SERVING with everything loaded.
            started = time.monotonic_ns()
            fresh, fresh_address, _ = self.agent(address, "fresh", wait=False)
            serving = self.driver("wait-serving", target=fresh_address, timeout=120)
            rows[f"agent start -> SERVING, {label} (goal)"] = (
                (serving["serving_ns"] - started) / 1e6, 1000.0, "ms", "lower")
            self.stop(fresh)

            # Writes while new agents take a snapshot of everything but the written chain.
            self.driver("fill", control_plane=address, chain_prefix="w-", chains=1,
                        chainlets_per_chain=1)
            selector = ",".join(f"s{i}" for i in range(chains))
            records = os.path.join(self.work, "snapshot-writes.txt")
            snapshots = 3
            writer = subprocess.Popen(
                [self.driver_bin, "--mode=updates", f"--control_plane={address}",
                 "--chain=w-0", f"--seconds={4 + snapshots * 8}", f"--records={records}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(3)
            windows = []
            for n in range(snapshots):
                begin = time.monotonic_ns()
                probe = self.probe(address, 1, f"snap{n}-", selector=selector)
                snap = self.wait_snapshots(probe, 1)[0]
                windows.append((begin, snap["applied_ns"]))
                self.stop(probe)
                time.sleep(2)
            writer.wait()
            during, without = [], []
            for line in open(records):
                start, end, _ = line.split()
                start, end = int(start), int(end)
                ms = (end - start) / 1e6
                if any(start <= e and end >= b for b, e in windows):
                    during.append(ms)
                else:
                    without.append(ms)
            snapshot_ms = statistics.median((e - b) / 1e6 for b, e in windows)
            rows[f"slowest write during a new agent's snapshot vs p99 without, {label}"] = (
                max(during) if during else 0.0, percentile(without, 0.99), "ms", "lower")
            rows[f"new agent's snapshot, {label} (no reference)"] = (snapshot_ms, None, "ms", "lower")
            self.stop(cp)
        return rows

    def ingest(self):
        """StreamLoad reports/s through one agent, beside a bare callback stream server."""
        rows = {}
        seconds = 3 if self.args.quick else 10
        cp, address = self.control_plane()
        self.driver("fill", control_plane=address, chain_prefix="i", chains=100,
                    chainlets_per_chain=50, clients=4)
        agent, agent_address, _ = self.agent(address, "ingest")
        self.driver("wait-chainlet", target=agent_address, chain="i99", env="development",
                    chainlet="c49")
        bare = self.spawn([self.bare_bin, "--listen=127.0.0.1:0"], "bare",
                          stdout=subprocess.PIPE)
        bare_address = f"127.0.0.1:{int(bare.stdout.readline())}"
        load = dict(chain_prefix="i", chains=100, chainlets_per_chain=50, sources=4, batch=32,
                    seconds=seconds)
        for streams in (1, 16, 256):
            # Agent and reference alternate in halves (A B B A), so a burst of load from
            # elsewhere on the machine falls on both alike.
            half = dict(load, seconds=seconds / 2)
            ours, ref = [], []
            for side in ("ours", "ref", "ref", "ours"):
                if side == "ours":
                    ours.append(self.driver("stream-load", target=agent_address,
                                            streams=streams, server_pid=agent.pid, **half))
                else:
                    ref.append(self.driver("stream-load", target=bare_address, streams=streams,
                                           server_pid=bare.pid, **half))
            rejected = sum(r["rejected"] for r in ours)
            if rejected:
                log(f"ingest: the agent rejected {rejected} reports")
            rows[f"StreamLoad reports/s, {streams} stream(s), 10k chainlets"] = (
                stream_rate(ours), stream_rate(ref), "/s", "higher")
            rows[f"server CPU s per million reports, {streams} stream(s)"] = (
                stream_cpu(ours), stream_cpu(ref), "s", "lower")
        self.stop(bare)
        self.stop(agent)
        self.stop(cp)
        return rows

    def forwarding(self):
        """StreamLoad reports/s sent to an agent that owns none of the chainlets and forwards
        every report to the owner (DESIGN §11), beside the same load sent to the owner
        directly, 16 streams, 10 000 chainlets."""
        seconds = 3 if self.args.quick else 10
        cp, address = self.control_plane()
        self.driver("fill", control_plane=address, chain_prefix="f", chains=100,
                    chainlets_per_chain=50, clients=4)
        owner, owner_address, _ = self.agent(address, "owner")
        self.driver("wait-chainlet", target=owner_address, chain="f99", env="development",
                    chainlet="c49")
        # May serve only a chain that does not exist: it owns nothing, forwards everything.
        relay, relay_address, _ = self.agent(address, "relay", extra=["--selector=none"])
        load = dict(chain_prefix="f", chains=100, chainlets_per_chain=50, sources=4, batch=32,
                    streams=16)
        # The relay knows every owner once a short run through it is taken whole.
        for _ in range(60):
            if self.driver("stream-load", target=relay_address, seconds=0.5, **load)[
                    "rejected"] == 0:
                break
        else:
            raise RuntimeError("forwarding: the relay never learned the owners")
        half = dict(load, seconds=seconds / 2)
        forwarded, direct = [], []
        for side in ("forwarded", "direct", "direct", "forwarded"):  # A B B A, as ingest
            if side == "forwarded":
                forwarded.append(self.driver("stream-load", target=relay_address,
                                             server_pid=relay.pid, **half))
            else:
                direct.append(self.driver("stream-load", target=owner_address,
                                          server_pid=owner.pid, **half))
        rejected = sum(r["rejected"] for r in forwarded + direct)
        if rejected:
            log(f"forwarding: {rejected} reports rejected")
        self.stop(relay)
        self.stop(owner)
        self.stop(cp)
        return {
            "StreamLoad reports/s through a non-owner vs to the owner, 16 streams":
                (stream_rate(forwarded), stream_rate(direct), "/s", "higher"),
        }

    def idle(self):
        """Back-to-back GetChain with no agent connected, beside etcd get and beside GetChain
        with one agent connected."""
        rows = {}
        seconds = 5 if self.args.quick else 10
        cp, address = self.control_plane()
        self.driver("fill", control_plane=address, chain_prefix="idle-", chains=1,
                    chainlets_per_chain=3)
        alone = self.driver("get-chain", control_plane=address, chain="idle-0", seconds=seconds)
        probe = self.probe(address, 1, "idle-")
        self.wait_snapshots(probe, 1)
        with_agent = self.driver("get-chain", control_plane=address, chain="idle-0",
                                 seconds=seconds)
        self.stop(probe)
        self.stop(cp)
        etcd, endpoint = self.etcd()
        ref = self.etcd_run(endpoint, mode="get", duration=f"{seconds}s")
        self.stop(etcd)
        rows["GetChain p99, no agent vs etcd get"] = (alone["p99_ms"], ref["p99_ms"], "ms", "lower")
        rows["GetChain max, no agent vs etcd get"] = (alone["max_ms"], ref["max_ms"], "ms", "lower")
        rows["calls > 20 ms per 10 s: GetChain with no agent vs etcd get"] = (
            alone["stalls_over_20ms"] * 10 / seconds, ref["stalls_over_20ms"] * 10 / seconds, "",
            "lower")
        rows["GetChain p99, no agent vs one agent connected"] = (
            alone["p99_ms"], with_agent["p99_ms"], "ms", "lower")
        rows["GetChain max, no agent vs one agent connected"] = (
            alone["max_ms"], with_agent["max_ms"], "ms", "lower")
        rows["GetChain calls > 20 ms per 10 s, no agent vs one agent"] = (
            alone["stalls_over_20ms"] * 10 / seconds,
            with_agent["stalls_over_20ms"] * 10 / seconds, "", "lower")
        return rows

    def failover(self):
        """Failover time (DESIGN §11): SIGKILL of a chain environment's owner to the first
        decision of the new owner stored by the control plane, over 20 kills (8 with
        --quick), lease TTL 2 s, decision interval 200 ms. Reference: the lease TTL plus two
        decision intervals, the time the design allows."""
        sys.path.insert(0, os.path.join(self.build, "python"))
        import grpc  # the generated stubs need it; only this group does
        from chainscale.v1 import control_plane_pb2 as cp
        from chainscale.v1 import control_plane_pb2_grpc as cp_grpc

        lease, interval = 2.0, 0.2
        kills = 8 if self.args.quick else 20
        proc = self.spawn([self.control_plane_bin, "--insecure", "--listen=127.0.0.1:0",
                           "--http_listen=", f"--data_dir={self.fresh_dir('cp')}",
                           f"--lease_ttl={lease}s"], "control-plane")
        address = f"127.0.0.1:{self.ports(proc)[0]}"
        self.driver("wait-serving", target=address)
        self.driver("fill", control_plane=address, chain_prefix="fo-", chains=1,
                    chainlets_per_chain=1)
        agents = {}

        def start(agent_id):
            agent = self.spawn([self.agent_bin, "--insecure", "--listen=127.0.0.1:0",
                                "--http_listen=", f"--control_plane={address}",
                                f"--agent_id={agent_id}", f"--decision_interval={interval}s",
                                f"--lease_ttl={lease}s"], "agent")
            self.ports(agent)
            agents[agent_id] = agent

        start("fo-a")
        start("fo-b")
        channel = grpc.insecure_channel(address)
        stub = cp_grpc.ControlPlaneStub(channel)
        request = cp.GetChainEnvironmentRequest(chain_id="fo-0", env_name="production")

        def stored():
            env = stub.GetChainEnvironment(request, timeout=10)
            d = env.chainlet_settings[0]
            return (d.decision.agent_id, d.decision.epoch) if d.HasField("decision") else ("", 0)

        def settled():
            # The owner now has stored its first decision: nothing is moving.
            env = stub.GetChainEnvironment(request, timeout=10)
            d = env.chainlet_settings[0].decision
            owner = env.owner
            return owner.agent_id and (d.agent_id, d.epoch) == (owner.agent_id, owner.epoch) and (
                owner.agent_id, owner.epoch)

        def wait(predicate, timeout=60):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                value = predicate()
                if value:
                    return value
                time.sleep(0.01)
            raise RuntimeError("failover: timed out")

        times = []
        for _ in range(kills):
            owner, epoch = wait(settled)
            victim = agents[owner]
            victim.kill()
            killed = time.monotonic()
            victim.wait()
            wait(lambda: stored()[0] not in ("", owner) and stored()[1] > epoch)
            times.append((time.monotonic() - killed) * 1000)
            self.procs.remove(victim)
            start(owner)  # back under the same id; the environment stays where it is now
        channel.close()
        for agent in agents.values():
            self.stop(agent)
        self.stop(proc)
        times.sort()
        allowed = (lease + 2 * interval) * 1000
        log(f"failover: {kills} kills, {min(times):.0f} to {max(times):.0f} ms")
        return {
            f"failover p50, SIGKILL to new owner's stored decision ({kills} kills)":
                (statistics.median(times), allowed, "ms", "lower"),
            f"failover p99 (max of {kills}), SIGKILL to new owner's stored decision":
                (times[-1], allowed, "ms", "lower"),
        }

    def closed_loop(self):
        """The bundled trace (tools/testdata/sample_trace.csv: 800 requests over 3 minutes)
        as real HTTP requests to chainscale-replica processes (4 at once each, the rest
        queued), the fleet scaled by chainscale (agent, control-plane feed, actuator with
        the process backend; the demo's settings: concurrency_target 4, window 30 s,
        scale-down delay 30 s, min 1, max 20) against fixed fleets sized for the trace's
        peak and for its mean in-flight requests, in the same run. With --quick the trace
        plays twice as fast (service times too)."""
        trace = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools",
                             "testdata", "sample_trace.csv")
        scale = 2 if self.args.quick else 1
        per_replica = 4
        mean, peak = trace_in_flight(trace)
        sizes = {"peak": math.ceil(peak / per_replica), "mean": math.ceil(mean / per_replica)}
        log(f"closed-loop: in flight mean {mean:.1f}, peak {peak}: fixed fleets of "
            f"{sizes['peak']} (peak) and {sizes['mean']} (mean)")
        port = free_port()
        replica = [self.replica_bin, f"--http_listen=127.0.0.1:{port}", "--reuse_port",
                   f"--max_concurrency={per_replica}", "--max_queue=4096", "--drain_timeout=1s",
                   f"--time_scale={scale}"]

        def replay(name):
            out = os.path.join(self.work, f"replay-{name}.json")
            proc = self.spawn([self.loadgen_bin, f"--http_target=127.0.0.1:{port}",
                               f"--pattern=trace:{trace}", f"--time_scale={scale}",
                               "--http_max_in_flight=1024", f"--summary_json={out}"],
                              f"loadgen-{name}")
            running = []
            while proc.poll() is None:  # replica-seconds: running replicas, once a second
                running.append(replicas_listening(port))
                time.sleep(1)
            self.procs.remove(proc)
            with open(out) as f:
                summary = json.load(f)
            summary["replica_seconds"] = sum(running) * scale  # in trace time
            summary["queued_seconds"] *= scale
            log(f"closed-loop {name}: {summary}")
            return summary

        def wait_listening(count):
            deadline = time.monotonic() + 60
            while replicas_listening(port) != count:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"closed-loop: {count} replicas never listened")
                time.sleep(0.05)

        results = {}
        for name, n in sizes.items():
            fleet = [self.spawn(replica, f"replica-{name}-{i}") for i in range(n)]
            wait_listening(n)
            results[name] = replay(f"fixed-{name}")
            for p in fleet:
                self.stop(p)

        cp, address = self.control_plane()
        cli = [self.cli_bin, f"--control_plane={address}"]
        subprocess.run(cli + ["CreateChain", json.dumps(
            {"chain_id": "loop", "chainlet_names": ["Model"]})], check=True,
            capture_output=True)
        subprocess.run(cli + ["UpdateChainletEnvironmentAutoscalingSettings", json.dumps(
            {"chain_id": "loop", "env_name": "production", "updates": [
                {"chainlet_name": "Model", "autoscaling_settings": {
                    "min_replica": 1, "max_replica": 20, "concurrency_target": per_replica,
                    "autoscaling_window": 30, "scale_down_delay": 30}}]})],
            check=True, capture_output=True)
        agent, agent_address, _ = self.agent(address, "loop")
        command = " ".join(replica + [f"--agent={agent_address}", "--chain_id=loop",
                                      "--chainlet_name=Model", "--source_id=replica-{index}"])
        actuator = self.spawn([self.actuator_bin, f"--control_plane={address}",
                               "--http_listen=127.0.0.1:0",
                               f"--state_dir={self.fresh_dir('actuator')}",
                               "--drain_period=10s",
                               f"--target=loop/production/Model=process:{command}"],
                              "actuator")
        wait_listening(1)
        results["chainscale"] = replay("chainscale")
        self.stop(actuator)
        # The actuator's replicas outlive it by design.
        subprocess.run(["pkill", "-TERM", "-f", "--", f"--http_listen=127.0.0.1:{port}"],
                       check=False)
        self.stop(agent)
        self.stop(cp)

        ours = results["chainscale"]
        rows = {}
        measures = (("trace replay latency p50", "p50_ms", "ms"),
                    ("trace replay latency p99", "p99_ms", "ms"),
                    ("queued request-seconds", "queued_seconds", "s"),
                    ("replica-seconds", "replica_seconds", "s"))
        for name in ("peak", "mean"):
            label = f"fixed fleet for the {name} ({sizes[name]})"
            for title, key, unit in measures:
                rows[f"{title}, chainscale vs {label}"] = (ours[key], results[name][key], unit,
                                                           "lower")
        return rows


def run_for_json(argv, what, timeout):
    """Runs a load generator; its last line of output is its result as JSON."""
    out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed: {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def stream_rate(results):
    return sum(r["accepted"] for r in results) / sum(r["seconds"] for r in results)


def stream_cpu(results):
    return sum(r["server_cpu_s"] for r in results) / (sum(r["accepted"] for r in results) / 1e6)


def trace_in_flight(path):
    """Mean and peak requests in flight over the trace, under the replicas' default
    service-time model (tools/simulator/trace.h): 50 ms + 0.2 ms per context token + 20 ms
    per generated token."""
    events = []
    first = None
    with open(path) as f:
        next(f)
        for line in f:
            stamp, context, generated = line.strip().split(",")
            t = datetime.datetime.strptime(stamp[:26], "%Y-%m-%d %H:%M:%S.%f").timestamp()
            first = t if first is None else first
            service = 0.05 + 0.0002 * int(context) + 0.02 * int(generated)
            events += [(t - first, 1), (t - first + service, -1)]
    events.sort()
    current = peak = 0
    area = 0.0
    last = 0.0
    for t, d in events:
        area += current * (t - last)
        last = t
        current += d
        peak = max(peak, current)
    return area / last, peak


def replicas_listening(port):
    """Sockets listening on the loopback port (one per replica, SO_REUSEPORT)."""
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True,
                         text=True).stdout
    return len([line for line in out.splitlines() if line.strip()])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def percentile(values, p):
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


def ratio(ours, ref):
    if ref is None or ours is None or ref == 0:
        return None
    return ours / ref


def fmt(value, unit):
    if value is None:
        return "—"
    if unit == "/s":
        return f"{value:,.0f}/s".replace(",", " ")
    if unit == "B":
        return f"{value / 1024:.2f} KB"
    if unit == "ms":
        return f"{value / 1000:.1f} s" if value >= 10000 else (f"{value:.2f} ms" if value < 10 else
                                                        f"{value:.0f} ms")
    if unit == "MB":
        return f"{value:,.0f} MB".replace(",", " ")
    if unit == "s":
        return f"{value:.2f} s"
    return f"{value:.1f}"


def median_rows(runs):
    """For each measure, the run whose ratio (or value) is the median of the runs."""
    names = []
    for run in runs:
        for name in run:
            if name not in names:
                names.append(name)
    table = []
    for name in names:
        results = [run[name] for run in runs if name in run]
        key = lambda r: (ratio(r[0], r[1]) if ratio(r[0], r[1]) is not None else r[0])
        results.sort(key=key)
        table.append((name, results[len(results) // 2], len(results)))
    return table


def print_table(table, out, markdown):
    if markdown:
        out.write("| measure | chainscale | reference, same run | ratio |\n|---|---|---|---|\n")
    for name, (ours, ref, unit, better), n in table:
        r = ratio(ours, ref)
        r_text = "—" if r is None else f"{r:.2f}"
        if r is not None:
            r_text += " (higher is better)" if better == "higher" else ""
        if markdown:
            out.write(f"| {name} | {fmt(ours, unit)} | {fmt(ref, unit)} | {r_text} |\n")
        else:
            out.write(f"{name:<70} {fmt(ours, unit):>14} {fmt(ref, unit):>14} {r_text:>8}\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build", help="build directory")
    parser.add_argument("--quick", action="store_true", help="one short run, 10k chainlets")
    parser.add_argument("--runs", type=int, default=None, help="repetitions (default 3, quick 1)")
    parser.add_argument("--only", default=",".join(GROUPS), help="comma-separated groups")
    parser.add_argument("--json", help="also write every run's numbers to this file")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--from_json", help="print the table of runs saved with --json; run nothing")
    args = parser.parse_args()
    if args.from_json:
        with open(args.from_json) as f:
            saved = [{name: tuple(row) for name, row in run.items()} for run in json.load(f)]
        print_table(median_rows(saved), sys.stdout, args.markdown)
        return
    runs = args.runs or (1 if args.quick else 3)
    groups = [g for g in args.only.split(",") if g]
    unknown = set(groups) - set(GROUPS)
    if unknown:
        parser.error(f"unknown groups {sorted(unknown)}; known: {GROUPS}")

    results = []
    failures = []
    bench = Bench(args)
    try:
        for run in range(runs):
            rows = {}
            for group in groups:
                log(f"run {run + 1}/{runs}: {group}")
                started = time.monotonic()
                # A group that fails is reported and the others still run.
                try:
                    rows.update(getattr(bench, group.replace("-", "_"))())
                except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as e:
                    failures.append(f"run {run + 1}, {group}: {e}")
                    log(f"{group} FAILED: {e}")
                    bench.stop_all()
                    continue
                log(f"{group} took {time.monotonic() - started:.0f} s")
            results.append(rows)
            sys.stderr.write(f"\nrun {run + 1} of {runs}:\n")
            print_table([(name, row, 1) for name, row in rows.items()], sys.stderr, False)
    finally:
        bench.stop_all()
        if failures:
            log(f"the processes' logs are kept in {bench.work}")
        else:
            shutil.rmtree(bench.work, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    print(f"\nchainscale beside its references, median of {runs} run(s); "
          "ratio = chainscale / reference")
    print_table(median_rows(results), sys.stdout, args.markdown)
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
