// chainscale-sync-probe: test agents without a decision loop. Runs one SyncClient per
// --agent_ids entry and prints every snapshot or change it applies as one JSON line on
// stdout, so system tests can check the histories. SIGTERM stops it and prints each
// client's stats.
#include <signal.h>

#include <iostream>
#include <memory>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "agent/settings_cache.h"
#include "agent/sync_client.h"
#include "common/process.h"
#include "common/selector.h"

ABSL_FLAG(std::string, control_plane, "127.0.0.1:50051", "control plane host:port");
ABSL_FLAG(std::vector<std::string>, agent_ids, {"probe"}, "one agent per id");
ABSL_FLAG(std::string, token, "", "agent token");
ABSL_FLAG(std::string, selector, "", "chain/env to serve; empty serves all");

namespace {

absl::Mutex print_mu;

std::string Key(const chainscale::v1::ChainletKey& k) {
  return absl::StrCat(k.chain_id(), "/", k.env_name(), "/", k.chainlet_name());
}

void Print(const std::string& line) {
  absl::MutexLock lock(&print_mu);
  std::cout << line << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const sigset_t signals = chainscale::BlockTerminationSignals();

  absl::StatusOr<chainscale::v1::Selector> selector =
      chainscale::ParseSelector(absl::GetFlag(FLAGS_selector));
  if (!selector.ok()) {
    std::cerr << selector.status().message() << "\n";
    return 2;
  }
  std::vector<std::unique_ptr<chainscale::SettingsCache>> caches;
  std::vector<std::unique_ptr<chainscale::SyncClient>> clients;
  for (const std::string& id : absl::GetFlag(FLAGS_agent_ids)) {
    caches.push_back(std::make_unique<chainscale::SettingsCache>());
    caches.back()->AddListener([id](const chainscale::AppliedUpdate& u) {
      std::vector<std::string> upserts;
      for (const auto& c : u.upserts) {
        upserts.push_back(absl::StrCat("\"", Key(c.key), "\": ", c.settings.max_replica));
      }
      std::vector<std::string> removals;
      for (const auto& k : u.removals) removals.push_back(absl::StrCat("\"", Key(k), "\""));
      Print(absl::StrCat("{\"agent\": \"", id, "\", \"revision\": ", u.revision,
                         ", \"snapshot\": ", u.snapshot ? "true" : "false", ", \"upserts\": {",
                         absl::StrJoin(upserts, ", "), "}, \"removals\": [",
                         absl::StrJoin(removals, ", "), "]}"));
    });
    chainscale::SyncClientOptions options;
    options.control_plane = absl::GetFlag(FLAGS_control_plane);
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
    Print(absl::StrCat("{\"agent\": \"", absl::GetFlag(FLAGS_agent_ids)[i],
                       "\", \"stats\": {\"streams\": ", stats.streams,
                       ", \"snapshots\": ", stats.snapshots, ", \"changes\": ", stats.changes,
                       ", \"rejected\": ", stats.rejected, "}}"));
  }
  return 0;
}
