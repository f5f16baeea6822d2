#include "control_plane/sync_hub.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "common/log.h"

namespace chainscale {
SyncHub::SyncHub(Store* store, SyncHubOptions options)
    : store_(store), options_(options), ticker_([this] { TickProgress(); }) {}

SyncHub::~SyncHub() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  ticker_.join();
}

SyncHub::SubscriptionId SyncHub::Subscribe(const v1::SyncHello& hello,
                                           std::shared_ptr<SyncSubscriber> subscriber) {
  const int64_t current = store_->revision();
  const int64_t last = hello.last_applied_revision();
  // Resume from the log only when the agent's state came from this cluster, is not
  // ahead of it, and every revision after it is still in the log.
  const bool resumable = !hello.cluster_id().empty() &&
                         hello.cluster_id() == store_->cluster_id() && last > 0 &&
                         last <= current && last + 1 >= store_->oldest_logged_revision();
  SubscriptionId id;
  {
    absl::MutexLock lock(&mu_);
    id = next_id_++;
    Subscription& s = subscriptions_[id];
    s.agent_id = hello.agent_id();
    s.selector = hello.selector();
    s.subscriber = subscriber;
    s.read_revision = resumable ? last : 0;
    s.sent_revision = s.read_revision;
    s.acked_revision = s.read_revision;
    s.snapshot_needed = !resumable;
    s.progress_due = true;  // an agent that is already up to date hears so at once
  }
  LogInfo("agent subscribed",
          {{"agent_id", hello.agent_id()},
           {"last_applied_revision", std::to_string(last)},
           {"revision", std::to_string(current)},
           {"start", resumable ? "resume" : "snapshot"}});
  subscriber->Wake();
  return id;
}

void SyncHub::Unsubscribe(SubscriptionId id) {
  std::string agent_id;
  {
    absl::MutexLock lock(&mu_);
    auto it = subscriptions_.find(id);
    if (it == subscriptions_.end()) return;
    agent_id = it->second.agent_id;
    subscriptions_.erase(it);
  }
  LogInfo("agent unsubscribed", {{"agent_id", agent_id}});
}

absl::StatusOr<std::optional<v1::SyncResponse>> SyncHub::Next(SubscriptionId id) {
  // Each pass either returns or moves the subscription's position forward, so the loop
  // ends; the bound keeps one call short when a long run of revisions is skipped.
  for (int pass = 0; pass < 64; ++pass) {
    v1::Selector selector;
    int64_t read_revision = 0;
    bool snapshot_needed = false;
    {
      absl::MutexLock lock(&mu_);
      auto it = subscriptions_.find(id);
      if (it == subscriptions_.end()) return std::nullopt;
      Subscription& s = it->second;
      if (s.snapshot != nullptr) {
        v1::SyncResponse response;
        v1::SyncSnapshot* chunk = response.mutable_snapshot();
        chunk->set_cluster_id(store_->cluster_id());
        chunk->set_revision(s.snapshot->revision);
        const size_t end = std::min(s.snapshot->chainlets.size(),
                                    s.snapshot_offset + options_.snapshot_chunk_chainlets);
        for (size_t i = s.snapshot_offset; i < end; ++i) {
          *chunk->add_chainlets() = std::move(s.snapshot->chainlets[i]);
        }
        s.snapshot_offset = end;
        s.snapshot_bytes -= std::min(s.snapshot_bytes, chunk->ByteSizeLong());
        if (end == s.snapshot->chainlets.size()) {
          chunk->set_last_chunk(true);
          s.read_revision = s.sent_revision = s.snapshot->revision;
          s.snapshot.reset();
          s.snapshot_bytes = 0;
        }
        return response;
      }
      if (!s.pending.empty()) {
        v1::SyncResponse response;
        *response.mutable_change() = std::move(s.pending.front());
        s.pending.pop_front();
        s.pending_bytes -= std::min(s.pending_bytes, response.change().ByteSizeLong());
        s.sent_revision = s.pending.empty() ? s.read_revision : response.change().revision();
        return response;
      }
      if (!s.snapshot_needed && s.read_revision >= store_->revision()) {
        if (!s.progress_due) return std::nullopt;
        s.progress_due = false;
        v1::SyncResponse response;
        response.mutable_progress()->set_revision(s.sent_revision);
        return response;
      }
      selector = s.selector;
      read_revision = s.read_revision;
      snapshot_needed = s.snapshot_needed;
    }

    // Store reads happen without the hub's lock.
    if (snapshot_needed) {
      absl::StatusOr<StoreSnapshot> snapshot = store_->ReadSnapshot();
      if (!snapshot.ok()) return snapshot.status();
      auto selected = std::make_unique<StoreSnapshot>();
      selected->revision = snapshot->revision;
      size_t bytes = 0;
      for (v1::ChainletState& state : snapshot->chainlets) {
        if (!SelectorMatches(selector, state.key())) continue;
        bytes += state.ByteSizeLong();
        selected->chainlets.push_back(std::move(state));
      }
      absl::MutexLock lock(&mu_);
      auto it = subscriptions_.find(id);
      if (it == subscriptions_.end()) return std::nullopt;
      it->second.snapshot = std::move(selected);
      it->second.snapshot_bytes = bytes;
      it->second.snapshot_offset = 0;
      it->second.snapshot_needed = false;
      it->second.pending.clear();
      it->second.pending_bytes = 0;
      continue;
    }

    absl::StatusOr<std::vector<v1::SyncChange>> changes =
        store_->ChangesSince(read_revision, options_.log_read_batch, options_.log_read_bytes);
    absl::MutexLock lock(&mu_);
    auto it = subscriptions_.find(id);
    if (it == subscriptions_.end()) return std::nullopt;
    Subscription& s = it->second;
    if (absl::IsOutOfRange(changes.status())) {
      s.snapshot_needed = true;  // fell behind the retained log
      continue;
    }
    if (!changes.ok()) return changes.status();
    for (const v1::SyncChange& change : *changes) {
      if (std::optional<v1::SyncChange> selected = Filter(change, s.selector)) {
        s.pending_bytes += selected->ByteSizeLong();
        s.pending.push_back(*std::move(selected));
      }
      s.read_revision = change.revision();
    }
    if (s.pending.empty()) s.sent_revision = s.read_revision;
  }
  return std::nullopt;
}

void SyncHub::Ack(SubscriptionId id, int64_t revision) {
  absl::MutexLock lock(&mu_);
  auto it = subscriptions_.find(id);
  if (it == subscriptions_.end()) return;
  it->second.acked_revision = std::max(it->second.acked_revision, revision);
}

void SyncHub::Published() {
  std::vector<std::shared_ptr<SyncSubscriber>> subscribers;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, s] : subscriptions_) subscribers.push_back(s.subscriber);
  }
  for (const auto& subscriber : subscribers) subscriber->Wake();
}

AckOutcome SyncHub::WaitForAcks(absl::string_view chain_id, absl::string_view env_name,
                                int64_t revision, absl::Time deadline) {
  struct Wait {
    SyncHub* hub;
    absl::string_view chain_id;
    absl::string_view env_name;
    int64_t revision;
    int serving = 0;
    // Mutex conditions run with the lock held.
    static bool Done(Wait* w) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      w->serving = 0;
      bool all = true;
      for (const auto& [id, s] : w->hub->subscriptions_) {
        if (!SelectorMatches(s.selector, w->chain_id, w->env_name)) continue;
        ++w->serving;
        all &= s.acked_revision >= w->revision;
      }
      return all;
    }
  };
  Wait wait{this, chain_id, env_name, revision};
  absl::MutexLock lock(&mu_);
  const bool done = mu_.AwaitWithDeadline(absl::Condition(&Wait::Done, &wait), deadline);
  if (wait.serving == 0) return AckOutcome::kNoSubscribers;
  return done ? AckOutcome::kAllAcked : AckOutcome::kTimedOut;
}

int SyncHub::subscription_count() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(subscriptions_.size());
}

std::vector<SyncHub::SubscriptionStats> SyncHub::Stats() const {
  const int64_t current = store_->revision();
  std::vector<SubscriptionStats> stats;
  absl::MutexLock lock(&mu_);
  for (const auto& [id, s] : subscriptions_) {
    stats.push_back({s.agent_id, std::max<int64_t>(0, current - s.sent_revision),
                     s.pending_bytes + s.snapshot_bytes});
  }
  return stats;
}

void SyncHub::TickProgress() {
  while (true) {
    std::vector<std::shared_ptr<SyncSubscriber>> subscribers;
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.progress_interval);
      if (stopping_) return;
      for (auto& [id, s] : subscriptions_) {
        s.progress_due = true;
        subscribers.push_back(s.subscriber);
      }
    }
    for (const auto& subscriber : subscribers) subscriber->Wake();
  }
}

std::optional<v1::SyncChange> SyncHub::Filter(const v1::SyncChange& change,
                                              const v1::Selector& selector) {
  if (selector.chain_environments().empty()) return change;
  v1::SyncChange selected;
  selected.set_revision(change.revision());
  for (const v1::ChainletState& state : change.upserts()) {
    if (SelectorMatches(selector, state.key())) *selected.add_upserts() = state;
  }
  for (const v1::ChainletKey& key : change.removals()) {
    if (SelectorMatches(selector, key)) *selected.add_removals() = key;
  }
  if (selected.upserts().empty() && selected.removals().empty()) return std::nullopt;
  return selected;
}

}  // namespace chainscale
