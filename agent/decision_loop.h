// DecisionLoop: the agent's core, without gRPC. It keeps one load window and one
// ReplicaScaler per chainlet it serves, takes validated load reports, decides every
// chainlet on each Tick, decides at once when load reaches a chainlet at zero replicas
// (the cold-start path), and tells watchers about decisions that changed.
//
// Settings come from the SettingsCache (Apply); a change takes effect at the next
// decision. A chainlet the loop starts serving (agent start, takeover, new chainlet)
// starts from its stored decision and holds scale-downs until a whole window has passed.
#ifndef CHAINSCALE_AGENT_DECISION_LOOP_H_
#define CHAINSCALE_AGENT_DECISION_LOOP_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/settings_cache.h"
#include "chainscale/v1/agent.pb.h"
#include "common/chainlet_decider.h"
#include "common/clock.h"
#include "common/settings.h"

namespace chainscale {

struct DecisionLoopOptions {
  std::string agent_id;
  v1::Selector selector;  // what this agent serves; empty: everything
  int32_t report_staleness_seconds = 10;
  // Time between ticks; a scale-down due within half of it steps at this tick.
  absl::Duration decision_interval = absl::Seconds(1);
  int32_t max_sources_per_chainlet = kDefaultMaxSources;
  int max_reports_per_batch = 10'000;
};

// Current load of one chainlet, for metrics.
struct ChainletLoad {
  v1::ChainletKey key;
  double in_flight_requests = 0;
  int64_t in_flight_tokens = 0;
  int32_t desired_replicas = 0;
};

class DecisionLoop {
 public:
  // Called with each decision whose desired_replicas, status or capped flag changed
  // (and, with `all`, every decision), outside the loop's lock.
  using Watcher = std::function<void(const v1::ScalingDecision& decision, bool changed)>;

  DecisionLoop(DecisionLoopOptions options, const Clock& clock);

  // Takes a snapshot or change from the settings cache.
  void Apply(const AppliedUpdate& update) ABSL_LOCKS_EXCLUDED(mu_);

  // Validates the whole batch first (INVALID_ARGUMENT naming each bad field, NOT_FOUND
  // for an unknown chainlet, FAILED_PRECONDITION for one served by another agent,
  // RESOURCE_EXHAUSTED for too many sources) and records nothing unless all pass. Returns
  // the current decision of each chainlet touched, in order of first appearance.
  absl::StatusOr<std::vector<v1::ScalingDecision>> Report(
      const google::protobuf::RepeatedPtrField<v1::LoadReport>& reports)
      ABSL_LOCKS_EXCLUDED(mu_);

  // For streams: each report is taken or refused on its own. Returns one status per
  // report, in order.
  std::vector<absl::Status> ReportEach(
      const google::protobuf::RepeatedPtrField<v1::LoadReport>& reports)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Decides every chainlet at the clock's now. Returns the decisions that changed, with
  // those changed by the cold-start path since the previous tick.
  std::vector<v1::ScalingDecision> Tick() ABSL_LOCKS_EXCLUDED(mu_);

  absl::StatusOr<v1::ScalingDecision> Get(const v1::ChainletKey& key) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // Decisions of the chainlets of `chain_id` (all when empty) and `env_name` (all when
  // empty), ordered by key.
  std::vector<v1::ScalingDecision> List(absl::string_view chain_id,
                                        absl::string_view env_name) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // One page of List for ListScalingDecisions: page_size decisions (0 means 1000, at
  // most 10 000) after the page token's chainlet, and the token of the next page.
  // INVALID_ARGUMENT for a bad filter, size or token.
  absl::StatusOr<v1::ListScalingDecisionsResponse> ListPage(
      const v1::ListScalingDecisionsRequest& request) const ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<ChainletLoad> Loads() const ABSL_LOCKS_EXCLUDED(mu_);
  size_t size() const ABSL_LOCKS_EXCLUDED(mu_);
  // Approximate bytes held per chainlet (windows, sources, state), for benchmarks.
  size_t MemoryBytes() const ABSL_LOCKS_EXCLUDED(mu_);

  // Decisions made so far, by status (ACCEPTED, QUEUED, UNCHANGED).
  std::array<int64_t, 3> DecisionCounts() const;

  int AddWatcher(Watcher watcher, bool all = false) ABSL_LOCKS_EXCLUDED(watchers_mu_);
  void RemoveWatcher(int id) ABSL_LOCKS_EXCLUDED(watchers_mu_);

 private:
  struct Chainlet {
    Chainlet(const CachedChainlet& cached, ChainletDecider d)
        : key(cached.key), settings_revision(cached.revision), decider(std::move(d)),
          from_stored_decision(cached.decision.has_value()) {}

    v1::ChainletKey key;
    int64_t settings_revision = 0;
    ChainletDecider decider;
    bool from_stored_decision = false;
    bool decided = false;
    // What watchers were last told, to tell changes apart.
    int32_t told_replicas = -1;
    DecisionStatus told_status = DecisionStatus::kUnchanged;
    bool told_capped = false;
  };

  // The chainlet a valid report goes to: NOT_FOUND, FAILED_PRECONDITION (another
  // agent's environment) or RESOURCE_EXHAUSTED (too many sources) otherwise.
  absl::StatusOr<Chainlet*> TargetLocked(const v1::LoadReport& report)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records a checked report; for the cold-start path, decides at once when load reaches
  // a chainlet at zero. Appends a changed decision to `changed`.
  void RecordLocked(Chainlet& c, const v1::LoadReport& report, absl::Time now,
                    std::vector<std::pair<v1::ScalingDecision, bool>>* changed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records the decision `c` just made; true when it changed what watchers were told.
  bool DecidedLocked(Chainlet& c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::ScalingDecision ToProto(const Chainlet& c) const;
  void Notify(const std::vector<std::pair<v1::ScalingDecision, bool>>& decisions)
      ABSL_LOCKS_EXCLUDED(watchers_mu_);
  std::unique_ptr<Chainlet> NewChainlet(const CachedChainlet& cached, absl::Time now) const;

  const DecisionLoopOptions options_;
  const Clock& clock_;

  mutable absl::Mutex mu_;
  // Ordered so List answers in key order.
  std::map<std::string, std::unique_ptr<Chainlet>> chainlets_ ABSL_GUARDED_BY(mu_);
  // Changed outside a tick (cold start); returned by the next Tick.
  std::vector<v1::ScalingDecision> changed_since_tick_ ABSL_GUARDED_BY(mu_);

  absl::Mutex watchers_mu_;
  std::map<int, std::pair<Watcher, bool>> watchers_ ABSL_GUARDED_BY(watchers_mu_);
  int next_watcher_ ABSL_GUARDED_BY(watchers_mu_) = 1;
  std::atomic<int> watchers_for_all_{0};
  std::array<std::atomic<int64_t>, 3> decision_counts_{};
};

// INVALID_ARGUMENT when a decision filter names an environment without its chain.
absl::Status ValidateDecisionFilter(absl::string_view chain_id, absl::string_view env_name);

// What is wrong with a report's values, or OK. Field names are prefixed with `prefix`.
absl::Status ValidateLoadReport(const v1::LoadReport& report, absl::string_view prefix);

}  // namespace chainscale

#endif  // CHAINSCALE_AGENT_DECISION_LOOP_H_
