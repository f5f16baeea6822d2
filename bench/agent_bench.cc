// DecisionLoop::Tick in-process with a manual clock: one tick over N chainlets (each with
// three reporting sources) while nothing else runs, so no report waits and no decision is
// sent. Memory is DecisionLoop::MemoryBytes(), the loop's own estimate; the real agent's
// process RSS per chainlet (bench/run.py, group "scale") is several times larger.
//
//   build/bench/agent_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include "absl/strings/str_cat.h"
#include "agent/decision_loop.h"

namespace chainscale {
namespace {

class ManualClock final : public Clock {
 public:
  absl::Time Now() const override { return now_; }
  void Advance(absl::Duration d) { now_ += d; }

 private:
  absl::Time now_ = absl::FromUnixSeconds(1'700'000'000);
};

std::unique_ptr<DecisionLoop> LoadedLoop(int64_t chainlets, int32_t window, ManualClock& clock) {
  auto loop = std::make_unique<DecisionLoop>(DecisionLoopOptions{}, clock);
  AppliedUpdate snapshot;
  snapshot.snapshot = true;
  for (int64_t i = 0; i < chainlets; ++i) {
    SyncedChainlet c;
    c.key.set_chain_id(absl::StrCat("chain-", i / 10));
    c.key.set_env_name("production");
    c.key.set_chainlet_name(absl::StrCat("chainlet-", i % 10));
    c.settings.max_replica = 20;
    c.settings.autoscaling_window = window;
    snapshot.upserts.push_back(c);
  }
  loop->Apply(snapshot);
  // Three replicas report for every chainlet, for a whole window.
  for (int32_t second = 0; second < std::min(window, 120); ++second) {
    google::protobuf::RepeatedPtrField<v1::LoadReport> reports;
    for (const SyncedChainlet& c : snapshot.upserts) {
      for (int r = 0; r < 3; ++r) {
        v1::LoadReport* report = reports.Add();
        report->set_source_id(absl::StrCat("replica-", r));
        report->set_chain_id(c.key.chain_id());
        report->set_env_name(c.key.env_name());
        report->set_chainlet_name(c.key.chainlet_name());
        report->set_in_flight_requests((second * 7 + r) % 13);
      }
      if (reports.size() >= 9000) {
        if (!loop->Report(reports).ok()) std::abort();
        reports.Clear();
      }
    }
    if (!reports.empty() && !loop->Report(reports).ok()) std::abort();
    clock.Advance(absl::Seconds(1));
    loop->Tick();
  }
  return loop;
}

void BM_AgentTick(benchmark::State& state) {
  const int64_t n = state.range(0);
  ManualClock clock;
  std::unique_ptr<DecisionLoop> loop = LoadedLoop(n, static_cast<int32_t>(state.range(1)), clock);
  for (auto _ : state) {
    clock.Advance(absl::Seconds(1));
    benchmark::DoNotOptimize(loop->Tick());
  }
  state.counters["time_per_chainlet"] = benchmark::Counter(
      static_cast<double>(n),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.counters["estimated_bytes_per_chainlet"] = static_cast<double>(loop->MemoryBytes()) / n;
}

// A tick when a watcher follows every decision (include_unchanged): each tick also builds
// the decisions that did not change.
void BM_AgentTickWatchedWhole(benchmark::State& state) {
  const int64_t n = state.range(0);
  ManualClock clock;
  std::unique_ptr<DecisionLoop> loop = LoadedLoop(n, 60, clock);
  loop->AddWatcher([](const DecisionBatchPtr& batch) { benchmark::DoNotOptimize(batch); }, true);
  for (auto _ : state) {
    clock.Advance(absl::Seconds(1));
    benchmark::DoNotOptimize(loop->Tick());
  }
  state.counters["time_per_chainlet"] = benchmark::Counter(
      static_cast<double>(n),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

BENCHMARK(BM_AgentTickWatchedWhole)->Arg(100'000)->Unit(benchmark::kMillisecond);

BENCHMARK(BM_AgentTick)
    ->Args({1'000, 60})
    ->Args({100'000, 60})
    ->Args({1'000, 3600})
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace chainscale

BENCHMARK_MAIN();
