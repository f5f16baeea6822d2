// DecisionLoop: the agent's core, without gRPC. It owns every chainlet the agent serves:
// its settings, load window and ReplicaScaler. It takes validated load reports, decides
// every chainlet on each Tick, decides at once when load reaches a chainlet at zero
// replicas (the cold-start path), and tells watchers about decisions that changed.
//
// Chainlets come and go with Apply (a snapshot or change from the Sync stream); a settings
// change takes effect at the next decision. A chainlet the loop starts serving (agent
// start, takeover, new chainlet) starts from its stored decision and holds scale-downs
// until a whole window has passed.
//
// Concurrency: chainlets live in kShards shards, each under its own mutex, so reports
// only ever wait for the few chainlets a tick or a listing is looking at that moment
// (never for a whole tick). Ticks and listings hold a shard for at most a small chunk of
// chainlets at a time. Apply, rare, excludes ticks and listings so that a change applies
// to all its chainlets at one tick. Protos are built outside the shard locks. The
// success path of a report allocates nothing.
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
#include "absl/container/node_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/settings_cache.h"
#include "chainscale/v1/agent.pb.h"
#include "common/chainlet_decider.h"
#include "common/clock.h"
#include "common/decision_filter.h"
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

// A chain environment's ownership as this agent learns it: granted with an epoch (and, when
// taken over from another agent, the environment's latest stored decisions), or revoked
// (epoch 0).
struct OwnedEnvironment {
  std::string chain_id;
  std::string env_name;
  int64_t epoch = 0;
  std::vector<v1::ScalingDecision> stored_decisions;
};

// Decisions made together (by one tick, one call's cold starts, or a listing), shared
// read-only by every watcher that is sent them.
struct DecisionBatch {
  std::vector<v1::ScalingDecision> decisions;
  // False for a tick's unchanged decisions, which only include_unchanged watchers get.
  bool changed = true;
};
using DecisionBatchPtr = std::shared_ptr<const DecisionBatch>;

// Current load of one chainlet, for metrics.
struct ChainletLoad {
  std::string chain_id;
  std::string env_name;
  std::string chainlet_name;
  double in_flight_requests = 0;
  int64_t in_flight_tokens = 0;
  int32_t desired_replicas = 0;
};

class DecisionLoop {
 public:
  static constexpr int kShards = 64;

  // Called with each batch of decisions whose desired_replicas, status or capped flag
  // changed (and, for watchers added with `all`, with every tick's unchanged ones too),
  // outside the chainlets' locks. Must not block: it runs on the ticking thread.
  using Watcher = std::function<void(const DecisionBatchPtr& batch)>;

  DecisionLoop(DecisionLoopOptions options, const Clock& clock);

  // Takes a snapshot or change from the settings cache.
  void Apply(const AppliedUpdate& update) ABSL_LOCKS_EXCLUDED(structure_mu_);

  // Ownership (DESIGN §11). Until the first call the loop decides everything its selector
  // selects (a control plane that assigns no work); from then on only the chain
  // environments granted, stamping their epochs. A granted environment's chainlets
  // start again from the stored decisions given, or from what they hold, and warm up. With
  // `reset`, every environment not named is revoked.
  void SetOwned(const std::vector<OwnedEnvironment>& changes, bool reset)
      ABSL_LOCKS_EXCLUDED(structure_mu_);
  // While set, the loop holds every count (the control plane has not been heard from for
  // the lease TTL, so another agent may own the work by now): nothing is decided, and
  // decisions say so.
  void SetLeaseExpired(bool expired);
  bool lease_expired() const { return lease_expired_.load(std::memory_order_relaxed); }
  // Whether this agent decides the chain environment (always, while ownership is off).
  bool Owns(absl::string_view chain_id, absl::string_view env_name) const
      ABSL_LOCKS_EXCLUDED(structure_mu_);
  // True once ownership is on (SetOwned was called).
  bool owned_only() const { return owned_only_.load(std::memory_order_relaxed); }

  // Validates the whole batch first (INVALID_ARGUMENT naming each bad field, NOT_FOUND
  // for an unknown chainlet, FAILED_PRECONDITION for one served by another agent,
  // RESOURCE_EXHAUSTED for too many sources) and records nothing unless all pass. Returns
  // the current decision of each chainlet touched, in order of first appearance.
  absl::StatusOr<std::vector<v1::ScalingDecision>> Report(
      const google::protobuf::RepeatedPtrField<v1::LoadReport>& reports);

  // For streams: each report is taken or refused on its own. Returns one status per
  // report, in order; INVALID_ARGUMENT, recording nothing, for a batch of more than
  // max_reports_per_batch reports.
  absl::StatusOr<std::vector<absl::Status>> ReportEach(
      const google::protobuf::RepeatedPtrField<v1::LoadReport>& reports);
  // What ReportEach answers for a batch of `size` reports before looking at any: OK, or
  // INVALID_ARGUMENT when there are more than max_reports_per_batch.
  absl::Status CheckStreamBatch(int size) const;

  // Decides every chainlet at the clock's now and tells watchers. Returns what changed
  // since the previous tick, for the control plane: the batches of the cold-start path,
  // then this tick's, then the first decisions under a new epoch (sent even unchanged, so
  // the control plane records who decides; watchers do not hear them again).
  std::vector<DecisionBatchPtr> Tick() ABSL_LOCKS_EXCLUDED(structure_mu_);

  // INVALID_ARGUMENT for a name that is not a valid chain id, environment or chainlet
  // name (so that no malformed name can alias another chainlet), NOT_FOUND for an unknown
  // chainlet, FAILED_PRECONDITION for one of an environment this agent does not serve.
  absl::StatusOr<v1::ScalingDecision> Get(const v1::ChainletKey& key) const;
  // Decisions of the chainlets of `chain_id` (all when empty) and `env_name` (all when
  // empty), ordered by key. The filter must pass ValidateDecisionFilter.
  std::vector<v1::ScalingDecision> List(absl::string_view chain_id,
                                        absl::string_view env_name) const
      ABSL_LOCKS_EXCLUDED(structure_mu_);
  // One page of List for ListScalingDecisions: page_size decisions (0 means 1000, at
  // most 10 000) after the page token's chainlet, and the token of the next page.
  // INVALID_ARGUMENT for a bad filter, size or token.
  absl::StatusOr<v1::ListScalingDecisionsResponse> ListPage(
      const v1::ListScalingDecisionsRequest& request) const ABSL_LOCKS_EXCLUDED(structure_mu_);
  // The loads of the first `limit` chainlets in key order.
  std::vector<ChainletLoad> Loads(size_t limit) const ABSL_LOCKS_EXCLUDED(structure_mu_);
  size_t size() const { return size_.load(std::memory_order_relaxed); }
  // Approximate bytes held for the chainlets (maps, windows, sources, state), for
  // benchmarks; the process's RSS is what users pay.
  size_t MemoryBytes() const ABSL_LOCKS_EXCLUDED(structure_mu_);

  // Decisions made so far, by status (ACCEPTED, QUEUED, UNCHANGED).
  std::array<int64_t, 3> DecisionCounts() const;

  int AddWatcher(Watcher watcher, bool all = false) ABSL_LOCKS_EXCLUDED(watchers_mu_);
  void RemoveWatcher(int id) ABSL_LOCKS_EXCLUDED(watchers_mu_);

 private:
  // One chainlet's state. Its key (chain, environment and chainlet name joined by NUL) is
  // the map key; names are decoded from it when a proto is built.
  struct Chainlet {
    Chainlet(const SyncedChainlet& synced, const DeciderOptions& options, absl::Time now,
             uint8_t shard);

    ChainletDecider decider;
    int64_t settings_revision = 0;
    // What watchers were last told, to tell changes apart.
    int32_t told_replicas = -1;
    DecisionStatus told_status = DecisionStatus::kUnchanged;
    bool told_capped = false;
    bool decided = false;
    bool from_stored_decision = false;
    uint8_t shard = 0;
    int64_t epoch = 0;  // of this agent's ownership of the environment; 0: not owned
    // The next tick sends this chainlet's decision to the control plane even unchanged
    // (the first under a new epoch, so the control plane records who decides now);
    // watchers are not told again.
    bool announce = false;
  };
  using ChainletMap = absl::node_hash_map<std::string, Chainlet>;
  using Node = ChainletMap::value_type;

  struct alignas(64) Shard {
    mutable absl::Mutex mu;
    ChainletMap chainlets ABSL_GUARDED_BY(mu);
  };

  // What a decision proto is built from, copied out of a shard under its lock.
  struct DecisionView {
    std::string key;
    ScaleDecision decision;
    AutoscalingSettings settings;
    int64_t settings_revision = 0;
    bool decided = false;
    bool from_stored_decision = false;
    int64_t epoch = 0;
  };

  // Whether the loop decides this chainlet now.
  bool Decides(const Chainlet& c) const {
    return (!owned_only() || c.epoch > 0) && !lease_expired();
  }
  // The refusal of a report for a chainlet of an environment this agent does not own.
  static absl::Status NotOwned(const v1::LoadReport& report);

  // Locks the shards of a set (a bit per shard) in ascending order, for a batch that must
  // be checked whole before anything is recorded.
  class ShardLocks;

  static size_t HashKey(absl::string_view key) { return ChainletMap::hasher{}(key); }
  static uint8_t ShardOf(size_t hash) { return static_cast<uint8_t>(hash >> 58); }

  // Why report `index`'s chainlet was not found: INVALID_ARGUMENT for a malformed name,
  // FAILED_PRECONDITION for another agent's environment, NOT_FOUND otherwise.
  absl::Status Missing(const v1::LoadReport& report, int index) const;
  // Records a report whose values were checked; for the cold-start path, decides at once
  // when load reaches a chainlet at zero, adding the changed decision to `cold`. Returns
  // the window's status (RESOURCE_EXHAUSTED beyond the source cap). The caller holds the
  // node's shard lock.
  absl::Status Record(Node& node, const v1::LoadReport& report, absl::Time now,
                      std::vector<DecisionView>* cold);
  // Records the decision `c` just made; true when it changed what watchers were told.
  bool Decided(Chainlet& c);
  static DecisionView ViewOf(const Node& node);
  v1::ScalingDecision ToProto(const DecisionView& view) const;
  // Tells watchers of the cold-start decisions in `cold` and keeps them for the next tick.
  void ColdStarted(const std::vector<DecisionView>& cold) ABSL_LOCKS_EXCLUDED(cold_mu_);
  void Notify(const DecisionBatchPtr& batch) ABSL_LOCKS_EXCLUDED(watchers_mu_);
  // Views of at most `limit` chainlets in key order, from `first` on while their keys
  // start with `prefix`.
  std::vector<DecisionView> OrderedViews(std::vector<Node*>::const_iterator first,
                                         absl::string_view prefix, size_t limit) const
      ABSL_SHARED_LOCKS_REQUIRED(structure_mu_);
  void RebuildOrderLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(structure_mu_);

  const DecisionLoopOptions options_;
  const Clock& clock_;
  DeciderOptions decider_options_;

  std::array<Shard, kShards> shards_;
  // Held shared by ticks and listings, exclusively by Apply: the set of chainlets (and
  // the nodes `ordered_` points to) changes only under it exclusively.
  mutable absl::Mutex structure_mu_ ABSL_ACQUIRED_BEFORE(cold_mu_);
  // Every chainlet in key order, for List and ListPage; maintained by Apply only.
  std::vector<Node*> ordered_ ABSL_GUARDED_BY(structure_mu_);
  std::atomic<size_t> size_{0};
  // Owned chain environments (ChainletKeyPrefix of each) and their epochs.
  absl::flat_hash_map<std::string, int64_t> owned_ ABSL_GUARDED_BY(structure_mu_);
  std::atomic<bool> lease_expired_{false};
  std::atomic<bool> owned_only_{false};  // set by the first SetOwned

  absl::Mutex cold_mu_;
  // Changed on the cold-start path since the previous tick; returned by the next Tick.
  std::vector<DecisionBatchPtr> cold_since_tick_ ABSL_GUARDED_BY(cold_mu_);

  absl::Mutex watchers_mu_;
  std::map<int, std::pair<Watcher, bool>> watchers_ ABSL_GUARDED_BY(watchers_mu_);
  int next_watcher_ ABSL_GUARDED_BY(watchers_mu_) = 1;
  std::atomic<int> watchers_for_all_{0};
  std::array<std::atomic<int64_t>, 3> decision_counts_{};
};

}  // namespace chainscale

#endif  // CHAINSCALE_AGENT_DECISION_LOOP_H_
