// In-process control-plane restart with many chainlets (store filled without fsync through
// the Registry): how long until it serves again, and how long a SyncClient in the same
// process takes to receive the full snapshot. The real agent's start -> SERVING and
// writes during a new agent's snapshot are in bench/run.py (group "scale").
//
//   build/bench/restart_bench --chains=5000 --chainlets_per_chain=10
// (each chain has production and development, so that is 100 000 chainlets)
#include <atomic>
#include <cstdio>
#include <filesystem>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/settings_cache.h"
#include "agent/sync_client.h"
#include "common/clock.h"
#include "common/mutex_mode.h"
#include "control_plane/registry.h"
#include "control_plane/server.h"

ABSL_FLAG(int, chains, 5000, "chains to create");
ABSL_FLAG(int, chainlets_per_chain, 10, "chainlets per chain (each in two environments)");

namespace chainscale {
namespace {

int Run() {
  const std::string dir = (std::filesystem::temp_directory_path() /
                           absl::StrCat("chainscale-restart-bench-", ::getpid()))
                              .string();
  size_t chainlets = 0;
  {
    // Filled directly through the registry, without fsync, to save time.
    StoreOptions store_options;
    store_options.path = dir;
    store_options.sync_writes = false;
    std::unique_ptr<Store> store = Store::Open(store_options).value();
    Committer committer(store.get(), nullptr);
    Registry registry(store.get(), &committer, RegistryOptions{}, RealClock::Get());
    for (int c = 0; c < absl::GetFlag(FLAGS_chains); ++c) {
      v1::CreateChainRequest request;
      request.set_chain_id(absl::StrCat("chain-", c));
      for (int i = 0; i < absl::GetFlag(FLAGS_chainlets_per_chain); ++i) {
        request.add_chainlet_names(absl::StrCat("chainlet-", i));
      }
      if (!registry.CreateChain(request).ok()) return 1;
      chainlets += 2 * request.chainlet_names_size();
    }
  }
  ControlPlaneOptions options;
  options.listen = "127.0.0.1:0";
  options.http_listen = "";
  options.data_dir = dir;
  options.insecure = true;
  const absl::Time start = absl::Now();
  auto server = ControlPlaneServer::Start(options).value();
  const absl::Duration to_serving = absl::Now() - start;

  SettingsCache cache;
  std::atomic<size_t> received{0};
  cache.AddListener([&](const AppliedUpdate& u) {
    if (u.snapshot) received = u.upserts.size();
  });
  SyncClientOptions client_options;
  client_options.control_plane = absl::StrCat("127.0.0.1:", server->grpc_port());
  client_options.agent_id = "restart-bench";
  SyncClient client(client_options, &cache);
  const absl::Time connect = absl::Now();
  client.Start();
  while (received < chainlets) absl::SleepFor(absl::Milliseconds(5));
  const absl::Duration to_snapshot = absl::Now() - connect;
  client.Stop();
  server->Shutdown();
  std::printf("control plane with %zu chainlets\n", chainlets);
  std::printf("  start to SERVING            %8.1f ms\n", absl::ToDoubleMilliseconds(to_serving));
  std::printf("  new agent's full snapshot   %8.1f ms\n", absl::ToDoubleMilliseconds(to_snapshot));
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace chainscale

int main(int argc, char** argv) {
  chainscale::DisableMutexDeadlockDetection();
  absl::ParseCommandLine(argc, argv);
  return chainscale::Run();
}
