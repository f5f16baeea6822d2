// SettingsCache: where the Sync stream's snapshots and changes enter the agent. It keeps
// only the applied revision and the cluster id: every chainlet's settings go to the
// listeners (the DecisionLoop owns them), so the agent holds each chainlet once. A change
// applies only if it is newer than everything applied so far. Listeners hear of every
// applied snapshot or change before applied_revision() shows it, so whoever sees a
// revision sees what listeners did with it.
#ifndef CHAINSCALE_AGENT_SETTINGS_CACHE_H_
#define CHAINSCALE_AGENT_SETTINGS_CACHE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "chainscale/v1/control_plane.pb.h"
#include "common/settings.h"

namespace chainscale {

// The part of a stored decision that a chainlet an agent starts serving starts from.
struct StoredDecision {
  int32_t desired_replicas = 0;
  std::optional<absl::Time> scale_down_pending_since;
};

// One chainlet's settings as the Sync stream delivered them.
struct SyncedChainlet {
  v1::ChainletKey key;
  AutoscalingSettings settings;
  int64_t revision = 0;                   // that last changed the settings
  std::optional<StoredDecision> decision;  // the stored decision, from a snapshot
};

// What one apply did, for listeners.
struct AppliedUpdate {
  int64_t revision = 0;
  bool snapshot = false;  // true: everything was replaced
  // The snapshot came from another cluster than the state it replaces: nothing of the
  // old state (windows included) may carry over (DESIGN §5).
  bool new_cluster = false;
  std::vector<SyncedChainlet> upserts;
  std::vector<v1::ChainletKey> removals;
};

class SettingsCache {
 public:
  using Listener = std::function<void(const AppliedUpdate&)>;

  // Called after each apply, outside the cache's lock, in apply order.
  void AddListener(Listener listener) ABSL_LOCKS_EXCLUDED(notify_mu_);

  // Replaces the whole state with a snapshot read at `revision` on cluster `cluster_id`.
  void ApplySnapshot(const std::string& cluster_id, int64_t revision,
                     const std::vector<v1::ChainletState>& chainlets)
      ABSL_LOCKS_EXCLUDED(notify_mu_, mu_);
  // Applies one revision's changes. FAILED_PRECONDITION, changing nothing, when its
  // revision is not above the applied one (a duplicate or a step back).
  absl::Status ApplyChange(const v1::SyncChange& change) ABSL_LOCKS_EXCLUDED(notify_mu_, mu_);
  // The control plane says everything up to `revision` has been sent: nothing selected
  // changed in between. Ignored unless it moves forward.
  void AdvanceTo(int64_t revision) ABSL_LOCKS_EXCLUDED(notify_mu_, mu_);

  int64_t applied_revision() const ABSL_LOCKS_EXCLUDED(mu_);
  std::string cluster_id() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  int64_t applied_revision_ ABSL_GUARDED_BY(mu_) = 0;
  std::string cluster_id_ ABSL_GUARDED_BY(mu_);
  // Serialises applies so listeners see them in order.
  absl::Mutex notify_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::vector<Listener> listeners_ ABSL_GUARDED_BY(notify_mu_);
};

}  // namespace chainscale

#endif  // CHAINSCALE_AGENT_SETTINGS_CACHE_H_
