// The pure algorithm alone: LoadWindow::Average and ReplicaScaler::Decide over a flat
// vector of N chainlets, single-threaded, no reports arriving, no lock, no map, no
// decisions sent. This is a lower bound for the arithmetic, NOT the agent's tick: the
// agent walks its chainlets under the lock its reports need and sends changed decisions
// (bench/run.py measures what reports wait in the real agent; agent_bench times
// DecisionLoop::Tick). Bytes are the window's own estimate, not process memory.
//
//   build/bench/decision_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/load_window.h"
#include "common/replica_scaler.h"
#include "common/settings.h"

namespace chainscale {
namespace {

struct BenchChainlet {
  AutoscalingSettings settings;
  LoadWindow window;
  ReplicaScaler scaler;
};

std::vector<BenchChainlet> MakeChainlets(int64_t n, int32_t window_seconds, absl::Time now) {
  std::vector<BenchChainlet> chainlets;
  chainlets.reserve(n);
  std::mt19937_64 rng(42);
  for (int64_t i = 0; i < n; ++i) {
    AutoscalingSettings s;
    s.max_replica = 20;
    s.autoscaling_window = window_seconds;
    chainlets.push_back({s, LoadWindow(window_seconds, 10), ReplicaScaler()});
    // Three replicas reporting, so windows carry real sources and totals.
    for (int r = 0; r < 3; ++r) {
      absl::Status s = chainlets.back().window.Report(
          absl::StrCat("replica-", r), LoadSample{static_cast<int64_t>(rng() % 5000), {}}, now);
      if (!s.ok()) std::abort();
    }
  }
  return chainlets;
}

void BM_WindowAndScalerOnly(benchmark::State& state) {
  const int64_t n = state.range(0);
  const int32_t window_seconds = static_cast<int32_t>(state.range(1));
  absl::Time now = absl::FromUnixSeconds(1'700'000'000);
  std::vector<BenchChainlet> chainlets = MakeChainlets(n, window_seconds, now);
  int64_t accepted = 0;
  for (auto _ : state) {
    now += absl::Seconds(1);
    for (BenchChainlet& c : chainlets) {
      ScaleInputs inputs;
      inputs.load = c.window.Average(now);
      inputs.live_source = c.window.has_live_source();
      const ScaleDecision d = c.scaler.Decide(c.settings, inputs, now);
      accepted += d.status == DecisionStatus::kAccepted;
    }
  }
  benchmark::DoNotOptimize(accepted);
  size_t bytes = 0;
  for (const BenchChainlet& c : chainlets) bytes += c.window.MemoryBytes() + sizeof(c);
  state.SetItemsProcessed(state.iterations() * n);
  // Printed in seconds with an SI prefix: "45n" is 45 ns per chainlet per tick.
  state.counters["algorithm_time_per_chainlet"] = benchmark::Counter(
      static_cast<double>(n),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.counters["estimated_window_bytes"] = static_cast<double>(bytes) / n;
}

BENCHMARK(BM_WindowAndScalerOnly)
    ->Args({1'000, 60})
    ->Args({100'000, 60})
    ->Args({1'000, 3600})
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace chainscale

BENCHMARK_MAIN();
