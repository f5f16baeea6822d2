// chainscale-sync-probe: test agents without a decision loop. Runs one SyncClient per
// --agent_ids entry and prints every snapshot or change it applies as one JSON line on
// stdout, so system tests can check the histories. SIGTERM stops it and prints each
// client's stats.
//
// Benchmarks run hundreds of agents in one probe; for them --connection_per_agent gives
// each agent its own TCP connection (as separate agent processes have), --timestamps adds
// the CLOCK_MONOTONIC time of each apply (comparable across processes on one machine), and
// --counts_only prints counts instead of every chainlet (a snapshot of 100 000 chainlets).
#include <signal.h>
#include <time.h>

#include <iostream>
#include <memory>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "agent/settings_cache.h"
#include "agent/sync_client.h"
#include "common/mutex_mode.h"
#include "common/process.h"
#include "common/selector.h"

ABSL_FLAG(std::string, control_plane, "127.0.0.1:50051", "control plane host:port");
ABSL_FLAG(std::vector<std::string>, agent_ids, {"probe"}, "one agent per id");
ABSL_FLAG(int, agent_count, 0,
          "when > 0, runs this many agents named <agent_prefix><n> instead of --agent_ids");
ABSL_FLAG(std::string, agent_prefix, "probe-", "name prefix for --agent_count");
ABSL_FLAG(std::string, token, "", "agent token");
ABSL_FLAG(std::string, selector, "", "chain/env to serve; empty serves all");
ABSL_FLAG(bool, connection_per_agent, false,
          "give each agent its own connection (--control_plane must be an IPv4 host:port)");
ABSL_FLAG(bool, timestamps, false, "add applied_ns, the CLOCK_MONOTONIC time of each apply");
ABSL_FLAG(bool, counts_only, false,
          "print upsert_count and removal_count instead of every chainlet");

namespace {

absl::Mutex print_mu;

std::string Key(const chainscale::v1::ChainletKey& k) {
  return absl::StrCat(k.chain_id(), "/", k.env_name(), "/", k.chainlet_name());
}

void Print(const std::string& line) {
  absl::MutexLock lock(&print_mu);
  std::cout << line << std::endl;
}

int64_t MonotonicNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// gRPC shares one connection among channels whose target and arguments are equal. A
// distinct target per agent that names the same address ("ipv4:///127.0.0.1:50051?agent=a1"
// resolves to 127.0.0.1:50051; the query is ignored) keeps them apart, as SyncClient
// builds its channel from the target alone.
std::string TargetFor(const std::string& control_plane, const std::string& agent_id) {
  if (!absl::GetFlag(FLAGS_connection_per_agent)) return control_plane;
  return absl::StrCat("ipv4:///", control_plane, "?agent=", agent_id);
}

std::string Describe(const std::string& id, const chainscale::AppliedUpdate& u) {
  std::string line = absl::StrCat("{\"agent\": \"", id, "\", \"revision\": ", u.revision,
                                  ", \"snapshot\": ", u.snapshot ? "true" : "false");
  if (absl::GetFlag(FLAGS_counts_only)) {
    absl::StrAppend(&line, ", \"upsert_count\": ", u.upserts.size(),
                    ", \"removal_count\": ", u.removals.size());
  } else {
    std::vector<std::string> upserts;
    for (const auto& c : u.upserts) {
      upserts.push_back(absl::StrCat("\"", Key(c.key), "\": ", c.settings.max_replica));
    }
    std::vector<std::string> removals;
    for (const auto& k : u.removals) removals.push_back(absl::StrCat("\"", Key(k), "\""));
    absl::StrAppend(&line, ", \"upserts\": {", absl::StrJoin(upserts, ", "),
                    "}, \"removals\": [", absl::StrJoin(removals, ", "), "]");
  }
  return line;
}

}  // namespace

int main(int argc, char** argv) {
  chainscale::DisableMutexDeadlockDetection();
  absl::ParseCommandLine(argc, argv);
  const sigset_t signals = chainscale::BlockTerminationSignals();

  absl::StatusOr<chainscale::v1::Selector> selector =
      chainscale::ParseSelector(absl::GetFlag(FLAGS_selector));
  if (!selector.ok()) {
    std::cerr << selector.status().message() << "\n";
    return 2;
  }
  const std::string control_plane = absl::GetFlag(FLAGS_control_plane);
  if (absl::GetFlag(FLAGS_connection_per_agent) && absl::StrContains(control_plane, "[")) {
    std::cerr << "--connection_per_agent needs an IPv4 host:port, not " << control_plane << "\n";
    return 2;
  }
  std::vector<std::string> ids = absl::GetFlag(FLAGS_agent_ids);
  if (absl::GetFlag(FLAGS_agent_count) > 0) {
    ids.clear();
    for (int i = 0; i < absl::GetFlag(FLAGS_agent_count); ++i) {
      ids.push_back(absl::StrCat(absl::GetFlag(FLAGS_agent_prefix), i));
    }
  }
  const bool timestamps = absl::GetFlag(FLAGS_timestamps);
  std::vector<std::unique_ptr<chainscale::SettingsCache>> caches;
  std::vector<std::unique_ptr<chainscale::SyncClient>> clients;
  for (const std::string& id : ids) {
    caches.push_back(std::make_unique<chainscale::SettingsCache>());
    caches.back()->AddListener([id, timestamps](const chainscale::AppliedUpdate& u) {
      const int64_t applied_ns = timestamps ? MonotonicNanos() : 0;
      std::string line = Describe(id, u);
      if (timestamps) absl::StrAppend(&line, ", \"applied_ns\": ", applied_ns);
      Print(absl::StrCat(line, "}"));
    });
    chainscale::SyncClientOptions options;
    options.control_plane = TargetFor(control_plane, id);
    options.agent_id = id;
    options.token = absl::GetFlag(FLAGS_token);
    options.selector = *selector;
    options.backoff.initial = absl::Milliseconds(50);
    options.backoff.max = absl::Seconds(1);
    clients.push_back(std::make_unique<chainscale::SyncClient>(options, caches.back().get()));
    clients.back()->Start();
  }
  chainscale::AwaitTerminationSignal(signals);
  for (size_t i = 0; i < clients.size(); ++i) {
    clients[i]->Stop();
    const chainscale::SyncClient::Stats stats = clients[i]->stats();
    Print(absl::StrCat("{\"agent\": \"", ids[i], "\", \"stats\": {\"streams\": ", stats.streams,
                       ", \"snapshots\": ", stats.snapshots, ", \"changes\": ", stats.changes,
                       ", \"rejected\": ", stats.rejected, "}}"));
  }
  return 0;
}
