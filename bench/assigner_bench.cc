// The cost of assigning chain environments to agents (DESIGN §11): from nothing, and the
// rebalance after one agent joins or leaves a balanced fleet.
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "control_plane/assigner.h"

namespace chainscale {
namespace {

std::vector<ChainEnv> Envs(int64_t count) {
  std::vector<ChainEnv> envs;
  envs.reserve(count);
  for (int64_t i = 0; i < count; ++i) envs.push_back({"chain-" + std::to_string(i), "production"});
  return envs;
}

std::vector<AssignableAgent> Agents(int64_t count) {
  std::vector<AssignableAgent> agents;
  for (int64_t i = 0; i < count; ++i) agents.push_back({"agent-" + std::to_string(i), {}});
  return agents;
}

absl::flat_hash_map<ChainEnv, std::string> Balanced(const std::vector<ChainEnv>& envs,
                                                    const std::vector<AssignableAgent>& agents) {
  absl::flat_hash_map<ChainEnv, std::string> owners;
  for (const OwnerMove& m : Rebalance(envs, agents, {})) owners[m.env] = m.to;
  return owners;
}

// args: agents, environments
void BM_AssignFromNothing(benchmark::State& state) {
  const auto envs = Envs(state.range(1));
  const auto agents = Agents(state.range(0));
  for (auto _ : state) benchmark::DoNotOptimize(Rebalance(envs, agents, {}));
}
BENCHMARK(BM_AssignFromNothing)->Args({10, 100000})->Args({1000, 100000})
    ->Unit(benchmark::kMillisecond);

void BM_RebalanceAfterJoin(benchmark::State& state) {
  const auto envs = Envs(state.range(1));
  auto agents = Agents(state.range(0));
  const auto owners = Balanced(envs, agents);
  agents.push_back({"joiner", {}});
  size_t moved = 0;
  for (auto _ : state) moved = Rebalance(envs, agents, owners).size();
  state.counters["moved"] = static_cast<double>(moved);
}
BENCHMARK(BM_RebalanceAfterJoin)->Args({10, 100000})->Args({1000, 100000})
    ->Unit(benchmark::kMillisecond);

void BM_RebalanceAfterLeave(benchmark::State& state) {
  const auto envs = Envs(state.range(1));
  auto agents = Agents(state.range(0));
  const auto owners = Balanced(envs, agents);
  agents.erase(agents.begin());
  size_t moved = 0;
  for (auto _ : state) moved = Rebalance(envs, agents, owners).size();
  state.counters["moved"] = static_cast<double>(moved);
}
BENCHMARK(BM_RebalanceAfterLeave)->Args({10, 100000})->Args({1000, 100000})
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace chainscale

BENCHMARK_MAIN();
