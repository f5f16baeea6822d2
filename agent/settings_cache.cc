#include "agent/settings_cache.h"

#include "absl/strings/str_cat.h"
#include "common/chainlet_key.h"
#include "common/settings_proto.h"

namespace chainscale {
namespace {

CachedChainlet FromState(const v1::ChainletState& state) {
  CachedChainlet c;
  c.key = state.key();
  c.settings = Merge(DefaultSettings(state.key().env_name()), UpdateFromProto(state.settings()));
  c.revision = state.revision();
  if (state.has_decision()) c.decision = state.decision();
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
    chainlets_.clear();
    for (const v1::ChainletState& state : chainlets) {
      CachedChainlet c = FromState(state);
      update.upserts.push_back(c);
      chainlets_[EncodeChainletKey(c.key)] = std::move(c);
    }
  }
  for (const Listener& listener : listeners_) listener(update);
  // Published after the listeners ran: whoever sees this revision sees their effects.
  absl::MutexLock lock(&mu_);
  applied_revision_ = revision;
  cluster_id_ = cluster_id;
}

absl::Status SettingsCache::ApplyChange(const v1::SyncChange& change) {
  absl::MutexLock notify(&notify_mu_);
  AppliedUpdate update;
  update.revision = change.revision();
  {
    absl::MutexLock lock(&mu_);
    if (change.revision() <= applied_revision_) {
      return absl::FailedPreconditionError(absl::StrCat(
          "change at revision ", change.revision(), " is not after applied revision ",
          applied_revision_));
    }
    for (const v1::ChainletState& state : change.upserts()) {
      CachedChainlet c = FromState(state);
      auto& slot = chainlets_[EncodeChainletKey(c.key)];
      c.decision = slot.decision;  // settings changed; the stored decision still stands
      slot = c;
      update.upserts.push_back(std::move(c));
    }
    for (const v1::ChainletKey& key : change.removals()) {
      chainlets_.erase(EncodeChainletKey(key));
      update.removals.push_back(key);
    }
  }
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

std::optional<CachedChainlet> SettingsCache::Get(const v1::ChainletKey& key) const {
  absl::MutexLock lock(&mu_);
  auto it = chainlets_.find(EncodeChainletKey(key));
  if (it == chainlets_.end()) return std::nullopt;
  return it->second;
}

std::vector<CachedChainlet> SettingsCache::All() const {
  absl::MutexLock lock(&mu_);
  std::vector<CachedChainlet> out;
  out.reserve(chainlets_.size());
  for (const auto& [key, c] : chainlets_) out.push_back(c);
  return out;
}

size_t SettingsCache::size() const {
  absl::MutexLock lock(&mu_);
  return chainlets_.size();
}

}  // namespace chainscale
