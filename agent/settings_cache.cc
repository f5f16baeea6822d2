#include "agent/settings_cache.h"

#include "absl/strings/str_cat.h"
#include "common/settings_proto.h"
#include "google/protobuf/util/time_util.h"

namespace chainscale {
namespace {

SyncedChainlet FromState(const v1::ChainletState& state) {
  SyncedChainlet c;
  c.key = state.key();
  c.settings = Merge(DefaultSettings(state.key().env_name()), UpdateFromProto(state.settings()));
  c.revision = state.revision();
  if (state.has_decision()) {
    StoredDecision& d = c.decision.emplace();
    d.desired_replicas = state.decision().desired_replicas();
    if (state.decision().has_scale_down_pending_since()) {
      d.scale_down_pending_since =
          absl::FromUnixNanos(google::protobuf::util::TimeUtil::TimestampToNanoseconds(
              state.decision().scale_down_pending_since()));
    }
  }
  return c;
}

}  // namespace

void SettingsCache::AddListener(Listener listener) {
  absl::MutexLock lock(&notify_mu_);
  listeners_.push_back(std::move(listener));
}

void SettingsCache::ApplySnapshot(const std::string& cluster_id, int64_t revision,
                                  const std::vector<v1::ChainletState>& chainlets) {
  absl::MutexLock notify(&notify_mu_);
  AppliedUpdate update;
  update.revision = revision;
  update.snapshot = true;
  {
    absl::MutexLock lock(&mu_);
    update.new_cluster = !cluster_id_.empty() && cluster_id_ != cluster_id;
  }
  update.upserts.reserve(chainlets.size());
  for (const v1::ChainletState& state : chainlets) update.upserts.push_back(FromState(state));
  for (const Listener& listener : listeners_) listener(update);
  // Published after the listeners ran: whoever sees this revision sees their effects.
  absl::MutexLock lock(&mu_);
  applied_revision_ = revision;
  cluster_id_ = cluster_id;
}

absl::Status SettingsCache::ApplyChange(const v1::SyncChange& change) {
  absl::MutexLock notify(&notify_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (change.revision() <= applied_revision_) {
      return absl::FailedPreconditionError(absl::StrCat(
          "change at revision ", change.revision(), " is not after applied revision ",
          applied_revision_));
    }
  }
  AppliedUpdate update;
  update.revision = change.revision();
  update.upserts.reserve(change.upserts_size());
  for (const v1::ChainletState& state : change.upserts()) {
    update.upserts.push_back(FromState(state));
  }
  update.removals.assign(change.removals().begin(), change.removals().end());
  for (const Listener& listener : listeners_) listener(update);
  absl::MutexLock lock(&mu_);
  applied_revision_ = change.revision();
  return absl::OkStatus();
}

void SettingsCache::AdvanceTo(int64_t revision) {
  absl::MutexLock notify(&notify_mu_);  // after any apply whose listeners are running
  absl::MutexLock lock(&mu_);
  if (revision > applied_revision_) applied_revision_ = revision;
}

int64_t SettingsCache::applied_revision() const {
  absl::MutexLock lock(&mu_);
  return applied_revision_;
}

std::string SettingsCache::cluster_id() const {
  absl::MutexLock lock(&mu_);
  return cluster_id_;
}

}  // namespace chainscale
