// In-process propagation: from the start of an UpdateChainletEnvironmentAutoscalingSettings
// call to the moment the agents' SyncClients applied the change, control plane and agents
// in ONE process whose channels share one connection, every commit fsynced. It understates
// what separate agents see; bench/run.py (group "propagation") runs the real control plane
// and agents on their own connections beside etcd's put -> watch.
//
//   build/bench/propagation_bench --updates=1000 --agents=1
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "agent/settings_cache.h"
#include "agent/sync_client.h"
#include "common/mutex_mode.h"
#include "control_plane/server.h"

ABSL_FLAG(int, updates, 1000, "updates to time");
ABSL_FLAG(int, agents, 1, "agents that must all apply each update");
ABSL_FLAG(std::string, data_dir, "", "store directory (default: a fresh temporary one)");

namespace chainscale {
namespace {

// Records when each revision was applied, per agent.
class ApplyTimes {
 public:
  void Record(int64_t revision) {
    absl::MutexLock lock(&mu_);
    auto& [count, last] = applied_[revision];
    ++count;
    last = absl::Now();
  }
  // Waits until `agents` applied `revision`; returns when the last one did.
  absl::Time WaitFor(int64_t revision, int agents) {
    absl::MutexLock lock(&mu_);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      auto it = applied_.find(revision);
      return it != applied_.end() && it->second.first >= agents;
    };
    mu_.Await(absl::Condition(&done));
    return applied_[revision].second;
  }

 private:
  absl::Mutex mu_;
  std::map<int64_t, std::pair<int, absl::Time>> applied_ ABSL_GUARDED_BY(mu_);
};

double Percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  const size_t index = std::min(values.size() - 1, static_cast<size_t>(p * values.size()));
  return values[index];
}

int Run() {
  const int updates = absl::GetFlag(FLAGS_updates);
  const int agents = absl::GetFlag(FLAGS_agents);
  std::string dir = absl::GetFlag(FLAGS_data_dir);
  if (dir.empty()) {
    dir = (std::filesystem::temp_directory_path() /
           absl::StrCat("chainscale-propagation-", ::getpid()))
              .string();
  }
  ControlPlaneOptions options;
  options.listen = "127.0.0.1:0";
  options.http_listen = "";
  options.data_dir = dir;
  options.insecure = true;
  options.ack_timeout = absl::Seconds(10);
  auto server = ControlPlaneServer::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  const std::string address = absl::StrCat("127.0.0.1:", (*server)->grpc_port());
  auto stub =
      v1::ControlPlane::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  {
    grpc::ClientContext context;
    v1::CreateChainRequest request;
    request.set_chain_id("bench");
    request.add_chainlet_names("HelloWorld");
    v1::Chain chain;
    if (!stub->CreateChain(&context, request, &chain).ok()) return 1;
  }

  ApplyTimes times;
  std::vector<std::unique_ptr<SettingsCache>> caches;
  std::vector<std::unique_ptr<SyncClient>> clients;
  for (int i = 0; i < agents; ++i) {
    caches.push_back(std::make_unique<SettingsCache>());
    caches.back()->AddListener([&times](const AppliedUpdate& u) { times.Record(u.revision); });
    SyncClientOptions client_options;
    client_options.control_plane = address;
    client_options.agent_id = absl::StrCat("bench-agent-", i);
    clients.push_back(std::make_unique<SyncClient>(client_options, caches.back().get()));
    clients.back()->Start();
  }
  times.WaitFor(1, agents);  // every agent has its snapshot

  std::vector<double> latencies_us;
  int accepted = 0;
  for (int i = 0; i < updates; ++i) {
    v1::UpdateChainletEnvironmentAutoscalingSettingsRequest request;
    request.set_chain_id("bench");
    request.set_env_name("production");
    auto* update = request.add_updates();
    update->set_chainlet_name("HelloWorld");
    update->mutable_autoscaling_settings()->set_max_replica(2 + i % 900);
    grpc::ClientContext context;
    v1::UpdateChainletEnvironmentAutoscalingSettingsResponse response;
    const absl::Time start = absl::Now();
    if (!stub->UpdateChainletEnvironmentAutoscalingSettings(&context, request, &response).ok()) {
      return 1;
    }
    if (response.status() == v1::UpdateChainletEnvironmentAutoscalingSettingsResponse::ACCEPTED) {
      ++accepted;
    }
    const absl::Time applied = times.WaitFor(2 + i, agents);
    latencies_us.push_back(absl::ToDoubleMicroseconds(applied - start));
  }
  std::printf("in-process propagation update -> %d agent(s) applied (one shared connection), %d fsynced updates\n",
              agents, updates);
  std::printf("  p50 %.0f us   p99 %.0f us   max %.0f us   (%d of %d answered ACCEPTED)\n",
              Percentile(latencies_us, 0.50), Percentile(latencies_us, 0.99),
              Percentile(latencies_us, 1.0), accepted, updates);
  for (auto& client : clients) client->Stop();
  (*server)->Shutdown();
  if (absl::GetFlag(FLAGS_data_dir).empty()) std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace chainscale

int main(int argc, char** argv) {
  chainscale::DisableMutexDeadlockDetection();
  absl::ParseCommandLine(argc, argv);
  return chainscale::Run();
}
