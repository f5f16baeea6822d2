#include "control_plane/sync_hub.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/names.h"

namespace chainscale {
namespace {

constexpr size_t kMaxAgentIdLength = 128;
// Room left in a message for its envelope (revision, flags, field tags).
constexpr size_t kEnvelopeBytes = 256;

absl::Status ValidateHello(const v1::SyncHello& hello) {
  if (hello.agent_id().empty() || hello.agent_id().size() > kMaxAgentIdLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        "hello.agent_id must be 1 to ", kMaxAgentIdLength, " characters, got ",
        hello.agent_id().size()));
  }
  for (char c : hello.agent_id()) {
    if (!absl::ascii_isgraph(c)) {
      return absl::InvalidArgumentError(
          "hello.agent_id may only hold printable ASCII without spaces");
    }
  }
  for (const v1::ChainEnvironmentRef& ref : hello.selector().chain_environments()) {
    if (std::optional<std::string> p = ChainIdProblem(ref.chain_id())) {
      return absl::InvalidArgumentError(absl::StrCat("hello.selector chain_id ", *p));
    }
    if (!ref.env_name().empty()) {
      if (std::optional<std::string> p = EnvironmentNameProblem(ref.env_name())) {
        return absl::InvalidArgumentError(absl::StrCat("hello.selector env_name ", *p));
      }
    }
  }
  if (hello.last_applied_revision() < 0) {
    return absl::InvalidArgumentError("hello.last_applied_revision must not be negative");
  }
  return absl::OkStatus();
}

// `change` restricted to what `selector` selects; nothing when that is empty.
std::optional<v1::SyncChange> Filter(const v1::SyncChange& change, const v1::Selector& selector) {
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

// Every message fits (DESIGN §5): one that would not is a bug, and ends the stream rather
// than failing on the agent's side over and over.
void Send(SyncSink& sink, v1::SyncResponse message) {
  if (message.ByteSizeLong() > kSyncMaxMessageBytes) {
    LogError("a Sync message over the limit was not sent",
             {{"bytes", std::to_string(message.ByteSizeLong())}});
    sink.End(absl::InternalError("the control plane built a Sync message over 1 MiB"));
    return;
  }
  sink.Send(std::move(message));
}

}  // namespace

SyncHub::SyncHub(Store* store, Committer* committer, SyncHubOptions options)
    : store_(store), committer_(committer), options_(options) {
  head_ = cache_after_ = store_->revision();
  for (int i = 0; i < std::max(1, options_.dispatch_threads); ++i) {
    dispatchers_.emplace_back([this] { Dispatch(); });
  }
  ticker_ = std::thread([this] { TickProgress(); });
}

SyncHub::~SyncHub() {
  std::vector<std::shared_ptr<SyncSink>> sinks;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (auto& [id, s] : subscriptions_) sinks.push_back(s.sink);
  }
  for (const auto& sink : sinks) sink->End(absl::UnavailableError("control plane shutting down"));
  for (std::thread& t : dispatchers_) t.join();
  ticker_.join();
}

absl::StatusOr<SyncHub::SubscriptionId> SyncHub::Subscribe(const v1::SyncHello& hello,
                                                           std::shared_ptr<SyncSink> sink) {
  if (absl::Status s = ValidateHello(hello); !s.ok()) return s;
  const int64_t current = store_->revision();
  const int64_t last = hello.last_applied_revision();
  // Resume from the log only when the agent's state came from this cluster, is not
  // ahead of it, and every revision after it is still in the log.
  const bool resumable = !hello.cluster_id().empty() &&
                         hello.cluster_id() == store_->cluster_id() && last > 0 &&
                         last <= current && last + 1 >= store_->oldest_logged_revision();
  std::shared_ptr<SyncSink> replaced;
  SubscriptionId id;
  Coordinator* coordinator = nullptr;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError("control plane shutting down");
    coordinator = coordinator_;
    if (auto it = by_agent_.find(hello.agent_id()); it != by_agent_.end()) {
      auto old = subscriptions_.find(it->second);
      if (old != subscriptions_.end()) {
        replaced = old->second.sink;
        subscriptions_.erase(old);
      }
    }
    id = next_id_++;
    Subscription& s = subscriptions_[id];
    s.agent_id = hello.agent_id();
    s.selector = hello.selector();
    s.sink = std::move(sink);
    s.read_revision = s.sent_revision = s.acked_revision = resumable ? last : 0;
    s.highest_sent = s.read_revision;
    s.snapshot_needed = !resumable;
    s.progress_due = true;  // an agent that is already up to date hears so at once
    by_agent_[s.agent_id] = id;
    MaybeQueueLocked(id, s);
  }
  if (coordinator != nullptr) {
    coordinator->Connected(hello.agent_id(), hello.selector(), hello.advertise_address());
  }
  if (replaced != nullptr) {
    replaced->End(absl::AbortedError(absl::StrCat(
        "replaced by a newer Sync stream of agent ", hello.agent_id(),
        ": one stream per agent id")));
  }
  LogInfo("agent subscribed",
          {{"agent_id", hello.agent_id()},
           {"last_applied_revision", std::to_string(last)},
           {"revision", std::to_string(current)},
           {"start", resumable ? "resume" : "snapshot"}});
  return id;
}

void SyncHub::Unsubscribe(SubscriptionId id) {
  std::string agent_id;
  Coordinator* coordinator = nullptr;
  {
    absl::MutexLock lock(&mu_);
    auto it = subscriptions_.find(id);
    if (it == subscriptions_.end()) return;
    agent_id = it->second.agent_id;
    if (auto a = by_agent_.find(agent_id); a != by_agent_.end() && a->second == id) {
      by_agent_.erase(a);
      coordinator = coordinator_;  // a stream replaced by a newer one keeps the agent
    }
    subscriptions_.erase(it);
  }
  if (coordinator != nullptr) coordinator->Disconnected(agent_id);
  LogInfo("agent unsubscribed", {{"agent_id", agent_id}});
}

void SyncHub::SetCoordinator(Coordinator* coordinator) {
  absl::MutexLock lock(&mu_);
  coordinator_ = coordinator;
}

void SyncHub::DeliverRoutes(std::vector<RouteDelivery> deliveries) {
  absl::MutexLock lock(&mu_);
  auto add = [this](SubscriptionId id, Subscription& s, const v1::SyncOwners& owners) {
    v1::SyncResponse response;
    *response.mutable_owners() = owners;
    // A new owner's stored decisions are for it alone.
    for (v1::EnvironmentRoute& route : *response.mutable_owners()->mutable_routes()) {
      if (route.agent_id() != s.agent_id) route.clear_decisions();
    }
    s.owners.push_back(std::move(response));
    MaybeQueueLocked(id, s);
  };
  for (const RouteDelivery& d : deliveries) {
    if (!d.agent_id.empty()) {
      auto a = by_agent_.find(d.agent_id);
      if (a == by_agent_.end()) continue;
      auto it = subscriptions_.find(a->second);
      if (it != subscriptions_.end()) add(it->first, it->second, d.message);
      continue;
    }
    for (auto& [id, s] : subscriptions_) add(id, s, d.message);
  }
}

bool SyncHub::SnapshotWindowFullLocked(const Subscription& s) const {
  return s.snapshot != nullptr &&
         s.snapshot_chunks_sent - s.snapshot_chunks_acked >= options_.snapshot_window_chunks;
}

bool SyncHub::SkipUnselectedLocked(Subscription& s) {
  if (s.busy || s.writing || s.queued || !s.pending.empty() || !s.owners.empty() ||
      s.snapshot_needed ||
      s.snapshot != nullptr || s.decisions_ack.has_value() || s.read_revision >= head_ ||
      s.sent_revision != s.read_revision || s.read_revision < cache_after_) {
    return false;
  }
  // cache_[i] holds revision cache_after_ + i + 1.
  for (size_t i = static_cast<size_t>(s.read_revision - cache_after_); i < cache_.size(); ++i) {
    for (const auto& [chain, env] : cache_[i].envs) {
      if (SelectorMatches(s.selector, chain, env)) return false;
    }
  }
  s.read_revision = s.sent_revision = head_;
  return true;
}

bool SyncHub::HasUrgentWorkLocked(const Subscription& s) const {
  if (s.decisions_ack.has_value() || !s.owners.empty() || !s.pending.empty()) return true;
  // Nothing else goes before the snapshot in progress, which waits for acks.
  if (SnapshotWindowFullLocked(s)) return false;
  return s.snapshot_needed || s.snapshot != nullptr || s.read_revision < head_;
}

void SyncHub::MaybeQueueLocked(SubscriptionId id, Subscription& s) {
  if (s.queued || s.busy || s.writing) return;
  if (HasUrgentWorkLocked(s)) {
    s.queued = true;
    run_queue_.push_back(id);
  } else if (s.progress_due && !s.progress_queued && !SnapshotWindowFullLocked(s)) {
    s.progress_queued = true;
    progress_queue_.push_back(id);
  }
}

void SyncHub::WriteDone(SubscriptionId id) {
  absl::MutexLock lock(&mu_);
  auto it = subscriptions_.find(id);
  if (it == subscriptions_.end()) return;
  it->second.writing = false;
  MaybeQueueLocked(id, it->second);
}

absl::Status SyncHub::Ack(SubscriptionId id, int64_t revision, int snapshot_chunks) {
  absl::MutexLock lock(&mu_);
  auto it = subscriptions_.find(id);
  if (it == subscriptions_.end()) return absl::OkStatus();
  Subscription& s = it->second;
  if (revision > s.highest_sent) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ack of revision ", revision, " on a stream that was sent revisions up to ",
        s.highest_sent, " only"));
  }
  s.acked_revision = std::max(s.acked_revision, revision);
  if (snapshot_chunks > s.snapshot_chunks_acked) {
    s.snapshot_chunks_acked = std::min(snapshot_chunks, s.snapshot_chunks_sent);
    MaybeQueueLocked(id, s);
  }
  return absl::OkStatus();
}

absl::Status SyncHub::ValidateDecision(const Subscription& s,
                                       const v1::ScalingDecision& d) const {
  if (ChainIdProblem(d.chain_id()) || EnvironmentNameProblem(d.env_name()) ||
      ChainletNameProblem(d.chainlet_name())) {
    return absl::InvalidArgumentError("a decision names no valid chainlet");
  }
  if (!SelectorMatches(s.selector, d.chain_id(), d.env_name())) {
    return absl::PermissionDeniedError(absl::StrCat(
        "a decision for ", d.chain_id(), "/", d.env_name(),
        ", which this agent does not serve"));
  }
  if (d.desired_replicas() < 0 || d.desired_replicas() > options_.max_replicas ||
      d.previous_replicas() < 0 || d.previous_replicas() > options_.max_replicas) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a decision with ", d.desired_replicas(), " desired and ", d.previous_replicas(),
        " previous replicas; both must be between 0 and ", options_.max_replicas));
  }
  if (d.reason().size() > options_.max_reason_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a decision reason of ", d.reason().size(), " bytes; at most ",
        options_.max_reason_bytes));
  }
  return absl::OkStatus();
}

void SyncHub::TakeDecisions(SubscriptionId id, const v1::SyncDecisions& decisions,
                            std::function<void()> resume) {
  std::vector<v1::ScalingDecision> valid;
  int32_t refused = 0;
  std::string first_refusal;
  {
    absl::MutexLock lock(&mu_);
    auto it = subscriptions_.find(id);
    if (it == subscriptions_.end()) return;
    Subscription& s = it->second;
    for (const v1::ScalingDecision& d : decisions.decisions()) {
      v1::ScalingDecision decision = d;
      decision.set_agent_id(s.agent_id);  // the stream says who decided, not the message
      absl::Status v = ValidateDecision(s, decision);
      // Fenced again when written: an epoch that is current here may not be by then.
      if (v.ok() && coordinator_ != nullptr) v = coordinator_->Fence(decision);
      if (!v.ok()) {
        ++refused;
        if (first_refusal.empty()) first_refusal = std::string(v.message());
        continue;
      }
      valid.push_back(std::move(decision));
    }
    decisions_refused_ += refused;
    if (refused > 0 && !s.refusal_logged) {
      s.refusal_logged = true;  // once per stream: a misbehaving agent cannot flood the log
      LogWarning("decisions refused", {{"agent_id", s.agent_id},
                                       {"refused", std::to_string(refused)},
                                       {"first", first_refusal}});
    }
  }
  const uint64_t sequence = decisions.sequence();
  auto finish = [this, id, sequence, refused, first_refusal, resume = std::move(resume)](
                    const std::vector<absl::Status>& statuses) {
    int32_t stored = 0;
    int32_t missing = 0;
    for (const absl::Status& s : statuses) (s.ok() ? stored : missing)++;
    {
      absl::MutexLock lock(&mu_);
      decisions_stored_ += stored;
      decisions_refused_ += missing;
      auto it = subscriptions_.find(id);
      if (it != subscriptions_.end()) {
        v1::SyncDecisionsAck ack;
        ack.set_sequence(sequence);
        ack.set_stored(stored);
        ack.set_refused(refused + missing);
        if (!first_refusal.empty()) ack.set_refusal(first_refusal);
        it->second.decisions_ack = ack;
        MaybeQueueLocked(id, it->second);
      }
    }
    resume();
  };
  if (valid.empty()) {
    finish({});
    return;
  }
  committer_->StoreDecisions(std::move(valid), std::move(finish));
}

void SyncHub::Published(const std::vector<std::shared_ptr<const v1::SyncChange>>& changes) {
  if (changes.empty()) return;
  absl::MutexLock lock(&mu_);
  for (const auto& change : changes) {
    cache_bytes_ += change->ByteSizeLong();
    std::vector<std::pair<std::string, std::string>> envs;
    auto touch = [&envs](const v1::ChainletKey& key) {
      for (const auto& [chain, env] : envs) {
        if (chain == key.chain_id() && env == key.env_name()) return;
      }
      envs.emplace_back(key.chain_id(), key.env_name());
    };
    for (const v1::ChainletState& state : change->upserts()) touch(state.key());
    for (const v1::ChainletKey& key : change->removals()) touch(key);
    cache_.push_back({change, std::move(envs)});
  }
  head_ = changes.back()->revision();
  while (cache_bytes_ > options_.change_cache_bytes && cache_.size() > 1) {
    cache_bytes_ -= cache_.front().change->ByteSizeLong();
    cache_after_ = cache_.front().change->revision();
    cache_.pop_front();
  }
  scan_ = true;  // a dispatch thread queues every subscription this concerns
}

bool SyncHub::ChangesFromCacheLocked(
    int64_t after, std::vector<std::shared_ptr<const v1::SyncChange>>* out) const {
  if (after < cache_after_) return false;
  size_t bytes = 0;
  for (size_t i = static_cast<size_t>(after - cache_after_);
       i < cache_.size() && static_cast<int>(out->size()) < options_.log_read_batch &&
       bytes < options_.log_read_bytes;
       ++i) {
    out->push_back(cache_[i].change);
    bytes += cache_[i].change->ByteSizeLong();
  }
  return true;
}

void SyncHub::PrepareChanges(const std::vector<std::shared_ptr<const v1::SyncChange>>& changes,
                             const v1::Selector& selector, std::deque<v1::SyncResponse>* out,
                             std::vector<int64_t>* revisions) const {
  const size_t budget = options_.max_message_bytes - kEnvelopeBytes;
  for (const auto& change : changes) {
    std::optional<v1::SyncChange> selected = Filter(*change, selector);
    if (!selected.has_value()) continue;
    if (selected->ByteSizeLong() <= budget) {
      out->emplace_back();
      *out->back().mutable_change() = *std::move(selected);
      revisions->push_back(change->revision());
      continue;
    }
    // Too big for one message: parts, applied by the agent at the last one.
    v1::SyncChange part;
    size_t part_bytes = 0;
    auto flush = [&](bool last) {
      part.set_revision(change->revision());
      part.set_continued(!last);
      out->emplace_back();
      *out->back().mutable_change() = std::move(part);
      revisions->push_back(last ? change->revision() : change->revision() - 1);
      part = v1::SyncChange();
      part_bytes = 0;
    };
    for (const v1::ChainletState& state : selected->upserts()) {
      const size_t size = state.ByteSizeLong() + 8;
      if (part_bytes > 0 && part_bytes + size > budget) flush(false);
      *part.add_upserts() = state;
      part_bytes += size;
    }
    for (const v1::ChainletKey& key : selected->removals()) {
      const size_t size = key.ByteSizeLong() + 8;
      if (part_bytes > 0 && part_bytes + size > budget) flush(false);
      *part.add_removals() = key;
      part_bytes += size;
    }
    flush(true);
  }
}

void SyncHub::Serve(SubscriptionId id) {
  // Each pass either sends, finds nothing to do, or moves the subscription's position.
  for (int pass = 0; pass < 64; ++pass) {
    std::shared_ptr<SyncSink> sink;
    std::optional<v1::SyncResponse> message;
    v1::Selector selector;
    int64_t read_revision = 0;
    std::unique_ptr<StoreSnapshotReader> reader;
    bool make_reader = false;
    std::vector<std::shared_ptr<const v1::SyncChange>> cached;
    bool from_cache = false;
    {
      absl::MutexLock lock(&mu_);
      auto it = subscriptions_.find(id);
      if (it == subscriptions_.end()) return;
      Subscription& s = it->second;
      if (stopping_) {
        s.busy = false;
        return;
      }
      if (s.decisions_ack.has_value()) {
        message.emplace();
        *message->mutable_decisions_ack() = *std::exchange(s.decisions_ack, std::nullopt);
      } else if (!s.owners.empty()) {
        message = std::move(s.owners.front());
        s.owners.pop_front();
      } else if (!s.pending.empty()) {
        message = std::move(s.pending.front());
        s.pending.pop_front();
        s.pending_bytes -= std::min(s.pending_bytes, message->ByteSizeLong());
        const int64_t after = s.pending_revisions.front();
        s.pending_revisions.pop_front();
        s.sent_revision = s.pending.empty() ? s.read_revision : after;
        s.highest_sent = std::max(s.highest_sent, message->change().revision());
      } else if (SnapshotWindowFullLocked(s)) {
        s.busy = false;  // the agent's next chunk ack queues it again
        return;
      } else if (s.snapshot_needed || s.snapshot != nullptr) {
        make_reader = s.snapshot == nullptr;
        if (make_reader) s.snapshot_chunks_sent = s.snapshot_chunks_acked = 0;
        s.snapshot_needed = false;
        reader = std::move(s.snapshot);
        selector = s.selector;
      } else if (s.read_revision < head_) {
        read_revision = s.read_revision;
        selector = s.selector;
        from_cache = ChangesFromCacheLocked(read_revision, &cached);
      } else if (s.progress_due) {
        s.progress_due = false;
        message.emplace();
        message->mutable_progress()->set_revision(s.sent_revision);
        s.highest_sent = std::max(s.highest_sent, s.sent_revision);
      } else {
        s.busy = false;
        MaybeQueueLocked(id, s);
        return;
      }
      if (message.has_value()) {
        s.writing = true;
        s.busy = false;
        sink = s.sink;
      }
    }
    if (message.has_value()) {
      Send(*sink, *std::move(message));
      return;
    }

    if (reader != nullptr || make_reader) {
      // A snapshot chunk, read from the store without the hub's lock.
      if (make_reader) reader = store_->NewSnapshotReader();
      std::vector<v1::ChainletState> chainlets;
      absl::Status read = reader->Next(
          std::min(options_.snapshot_chunk_bytes, options_.max_message_bytes - kEnvelopeBytes),
          [&selector](const v1::ChainletKey& key) { return SelectorMatches(selector, key); },
          &chainlets);
      std::shared_ptr<SyncSink> target;
      v1::SyncResponse response;
      {
        absl::MutexLock lock(&mu_);
        auto it = subscriptions_.find(id);
        if (it == subscriptions_.end()) return;
        Subscription& s = it->second;
        target = s.sink;
        s.busy = false;
        if (read.ok()) {
          v1::SyncSnapshot* chunk = response.mutable_snapshot();
          chunk->set_cluster_id(store_->cluster_id());
          chunk->set_revision(reader->revision());
          for (v1::ChainletState& state : chainlets) *chunk->add_chainlets() = std::move(state);
          if (reader->done()) {
            chunk->set_last_chunk(true);
            s.read_revision = s.sent_revision = reader->revision();
            s.highest_sent = std::max(s.highest_sent, reader->revision());
            s.pending.clear();
            s.pending_revisions.clear();
            s.pending_bytes = 0;
          } else {
            s.snapshot = std::move(reader);
          }
          ++s.snapshot_chunks_sent;
          s.writing = true;
        } else {
          LogError("sync stream cannot read the store",
                   {{"agent_id", s.agent_id}, {"error", std::string(read.message())}});
        }
      }
      // The stream is called outside the hub's lock: it takes its own.
      if (read.ok()) {
        Send(*target, std::move(response));
      } else {
        target->End(absl::UnavailableError("the control plane cannot read its store"));
      }
      return;
    }

    // Changes after read_revision: from the cache, or from the store for a laggard.
    if (!from_cache) {
      absl::StatusOr<std::vector<v1::SyncChange>> read =
          store_->ChangesSince(read_revision, options_.log_read_batch, options_.log_read_bytes);
      if (absl::IsOutOfRange(read.status())) {
        absl::MutexLock lock(&mu_);
        auto it = subscriptions_.find(id);
        if (it == subscriptions_.end()) return;
        it->second.snapshot_needed = true;  // fell behind the retained log
        continue;
      }
      if (!read.ok()) {
        std::shared_ptr<SyncSink> target;
        {
          absl::MutexLock lock(&mu_);
          auto it = subscriptions_.find(id);
          if (it == subscriptions_.end()) return;
          it->second.busy = false;
          target = it->second.sink;
          LogError("sync stream cannot read the store",
                   {{"agent_id", it->second.agent_id},
                    {"error", std::string(read.status().message())}});
        }
        target->End(absl::UnavailableError("the control plane cannot read its store"));
        return;
      }
      for (v1::SyncChange& change : *read) {
        cached.push_back(std::make_shared<const v1::SyncChange>(std::move(change)));
      }
    }
    std::deque<v1::SyncResponse> prepared;
    std::vector<int64_t> revisions;
    PrepareChanges(cached, selector, &prepared, &revisions);
    absl::MutexLock lock(&mu_);
    auto it = subscriptions_.find(id);
    if (it == subscriptions_.end()) return;
    Subscription& s = it->second;
    if (s.read_revision != read_revision || s.snapshot_needed || s.snapshot != nullptr) continue;
    for (size_t i = 0; i < prepared.size(); ++i) {
      s.pending_bytes += prepared[i].ByteSizeLong();
      s.pending.push_back(std::move(prepared[i]));
      s.pending_revisions.push_back(revisions[i]);
    }
    if (!cached.empty()) s.read_revision = cached.back()->revision();
    if (s.pending.empty()) s.sent_revision = s.read_revision;
  }
  absl::MutexLock lock(&mu_);
  auto it = subscriptions_.find(id);
  if (it == subscriptions_.end()) return;
  it->second.busy = false;
  MaybeQueueLocked(id, it->second);
}

void SyncHub::Dispatch() {
  while (true) {
    SubscriptionId id;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return stopping_ || scan_ || !run_queue_.empty() || !progress_queue_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      if (scan_) {
        scan_ = false;
        // A commit concerns few agents: the others move past it here, without a dispatch
        // each (with 1 000 streams that was ~10 ms per commit).
        for (auto& [sid, s] : subscriptions_) {
          if (!SkipUnselectedLocked(s)) MaybeQueueLocked(sid, s);
        }
      }
      const bool urgent = !run_queue_.empty();
      if (!urgent && progress_queue_.empty()) continue;
      std::deque<SubscriptionId>& queue = urgent ? run_queue_ : progress_queue_;
      id = queue.front();
      queue.pop_front();
      auto it = subscriptions_.find(id);
      if (it == subscriptions_.end()) continue;
      Subscription& s = it->second;
      (urgent ? s.queued : s.progress_queued) = false;
      // Work queued in the run queue is served from there.
      if (s.busy || s.writing || s.queued) continue;
      s.busy = true;
    }
    Serve(id);
  }
}

void SyncHub::TickProgress() {
  // Each subscription is due once per interval, in one of kSlices turns spread over it,
  // so a thousand streams do not all queue a message at the same moment.
  constexpr uint64_t kSlices = 64;
  for (uint64_t slice = 0;; slice = (slice + 1) % kSlices) {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.progress_interval / kSlices);
    if (stopping_) return;
    for (auto& [id, s] : subscriptions_) {
      if (id % kSlices != slice) continue;
      s.progress_due = true;
      MaybeQueueLocked(id, s);
    }
  }
}

AckOutcome SyncHub::WaitForAcks(absl::string_view chain_id, absl::string_view env_name,
                                int64_t revision, absl::Time deadline) {
  // The agents serving the environment now; one that reconnects is waited for on its new
  // stream, one that leaves no longer is. The condition runs at every release of the hub's
  // lock, so it looks at these agents only, never at every subscription.
  struct Wait {
    SyncHub* hub;
    std::vector<std::string> agents;
    int64_t revision;
    static bool Done(Wait* w) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      for (const std::string& agent : w->agents) {
        auto a = w->hub->by_agent_.find(agent);
        if (a == w->hub->by_agent_.end()) continue;
        auto s = w->hub->subscriptions_.find(a->second);
        if (s != w->hub->subscriptions_.end() && s->second.acked_revision < w->revision) {
          return false;
        }
      }
      return true;
    }
  };
  Wait wait{this, {}, revision};
  absl::MutexLock lock(&mu_);
  for (const auto& [id, s] : subscriptions_) {
    if (SelectorMatches(s.selector, chain_id, env_name)) wait.agents.push_back(s.agent_id);
  }
  if (wait.agents.empty()) return AckOutcome::kNoSubscribers;
  return mu_.AwaitWithDeadline(absl::Condition(&Wait::Done, &wait), deadline)
             ? AckOutcome::kAllAcked
             : AckOutcome::kTimedOut;
}

int SyncHub::subscription_count() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(subscriptions_.size());
}

std::vector<SyncHub::SubscriptionStats> SyncHub::Stats() const {
  absl::MutexLock lock(&mu_);
  std::vector<SubscriptionStats> stats;
  for (const auto& [id, s] : subscriptions_) {
    stats.push_back({s.agent_id, std::max<int64_t>(0, head_ - s.sent_revision), s.pending_bytes});
  }
  return stats;
}

int64_t SyncHub::decisions_refused() const {
  absl::MutexLock lock(&mu_);
  return decisions_refused_;
}

int64_t SyncHub::decisions_stored() const {
  absl::MutexLock lock(&mu_);
  return decisions_stored_;
}

}  // namespace chainscale
