#include "control_plane/decision_feed.h"

#include <algorithm>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/chainlet_key.h"

namespace chainscale {
namespace {

std::string NewFeedId() {
  absl::BitGen gen;
  return absl::StrFormat("%016x", absl::Uniform<uint64_t>(gen));
}

}  // namespace

DecisionFeed::DecisionFeed(const Store* store, DecisionFeedOptions options, Observer observer)
    : store_(store),
      options_(options),
      observer_(std::move(observer)),
      feed_id_(NewFeedId()),
      thread_([this] { Run(); }) {}

DecisionFeed::~DecisionFeed() {
  {
    absl::MutexLock lock(&ring_mu_);
    stopping_ = true;
  }
  thread_.join();
}

void DecisionFeed::Publish(std::vector<v1::ScalingDecision> stored) {
  if (stored.empty()) return;
  // Built before the lock: the committer holds it only to number and queue.
  std::vector<std::shared_ptr<FeedEvent>> events;
  events.reserve(stored.size());
  for (v1::ScalingDecision& d : stored) {
    auto event = std::make_shared<FeedEvent>();
    event->decision = std::move(d);
    events.push_back(std::move(event));
  }
  absl::MutexLock lock(&ring_mu_);
  for (std::shared_ptr<FeedEvent>& event : events) {
    event->sequence = ++last_sequence_;
    ring_.push_back(event);
    undelivered_.push_back(std::move(event));
  }
  while (ring_.size() > options_.ring_capacity) ring_.pop_front();
}

int64_t DecisionFeed::last_sequence() const {
  absl::MutexLock lock(&ring_mu_);
  return last_sequence_;
}

void DecisionFeed::Run() {
  while (true) {
    FeedBatch batch;
    {
      absl::MutexLock lock(&ring_mu_);
      auto has_work = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return stopping_ || !undelivered_.empty();
      };
      ring_mu_.Await(absl::Condition(&has_work));
      if (undelivered_.empty()) return;  // stopping, nothing left
      batch.swap(undelivered_);
    }
    if (observer_) observer_(batch);
    absl::MutexLock lock(&sinks_mu_);
    for (FeedSink* sink : sinks_) sink->Offer(batch);
    delivered_sequence_ = batch.back()->sequence;
  }
}

void DecisionFeed::AddSink(FeedSink* sink, absl::string_view feed_id, int64_t resume_after) {
  absl::MutexLock lock(&sinks_mu_);
  // Everything up to delivered_sequence_ has been offered to the sinks already; what
  // follows will be offered to this one too once it is registered.
  FeedStart start{delivered_sequence_, false};
  FeedBatch missed;
  if (feed_id == feed_id_ && resume_after >= 0 && resume_after <= delivered_sequence_) {
    absl::MutexLock ring_lock(&ring_mu_);
    const int64_t oldest = ring_.empty() ? last_sequence_ + 1 : ring_.front()->sequence;
    if (oldest <= resume_after + 1) {
      start = {resume_after, true};
      for (const FeedEventPtr& event : ring_) {
        if (event->sequence > resume_after && event->sequence <= delivered_sequence_) {
          missed.push_back(event);
        }
      }
    }
  }
  sink->Begin(start, missed);
  sinks_.insert(sink);
}

void DecisionFeed::RemoveSink(FeedSink* sink) {
  absl::MutexLock lock(&sinks_mu_);
  sinks_.erase(sink);
}

absl::Status DecisionFeed::CheckFilter(const DecisionFilter& filter) const {
  if (absl::Status s = ValidateDecisionFilter(filter.chain_id, filter.env_name); !s.ok()) {
    return s;
  }
  if (filter.chain_id.empty()) return absl::OkStatus();
  absl::StatusOr<v1::Chain> chain = store_->GetChain(filter.chain_id);
  if (!chain.ok()) return chain.status();
  if (!filter.env_name.empty() &&
      std::find(chain->environments().begin(), chain->environments().end(), filter.env_name) ==
          chain->environments().end()) {
    return absl::NotFoundError(absl::StrCat("environment \"", filter.env_name,
                                            "\" of chain \"", filter.chain_id, "\" not found"));
  }
  return absl::OkStatus();
}

DecisionListing::PageReader DecisionFeed::PageReaderFor(const DecisionFilter& filter) const {
  const std::string prefix =
      filter.chain_id.empty() ? std::string() : ChainletKeyPrefix(filter.chain_id, filter.env_name);
  return [store = store_, prefix, limit = options_.page_size](const std::string& page_token)
             -> absl::StatusOr<v1::ListScalingDecisionsResponse> {
    // The token is the store key of the previous page's last decision; it never leaves
    // the process.
    absl::StatusOr<std::vector<v1::ScalingDecision>> decisions =
        store->ListDecisions(prefix, page_token, limit);
    if (!decisions.ok()) return decisions.status();
    v1::ListScalingDecisionsResponse page;
    for (v1::ScalingDecision& d : *decisions) *page.add_decisions() = std::move(d);
    if (page.decisions_size() == limit) {
      const v1::ScalingDecision& last = page.decisions(limit - 1);
      page.set_next_page_token(
          EncodeChainletKey(last.chain_id(), last.env_name(), last.chainlet_name()));
    }
    return page;
  };
}

void FeedBacklog::StartWithInitialState(int64_t sequence, DecisionListing::PageReader read_page) {
  start_sequence_ = sequence;
  resumed_ = false;
  phase_ = Phase::kInitialState;
  listing_.Start(0, std::move(read_page));
}

void FeedBacklog::StartResumed(int64_t sequence, const FeedBatch& missed) {
  start_sequence_ = sequence;
  resumed_ = true;
  phase_ = Phase::kMarker;
  for (const FeedEventPtr& event : missed) Enqueue(event);
}

void FeedBacklog::Enqueue(const FeedEventPtr& event) {
  const v1::ScalingDecision& d = event->decision;
  if (!filter_.Matches(d)) return;
  const std::string key = EncodeChainletKey(d.chain_id(), d.env_name(), d.chainlet_name());
  auto it = by_chainlet_.find(key);
  if (it != by_chainlet_.end()) {
    pending_.erase(it->second);
    by_chainlet_.erase(it);
  }
  pending_.push_back(event);
  by_chainlet_.emplace(key, std::prev(pending_.end()));
}

bool FeedBacklog::Add(const FeedBatch& batch) {
  for (const FeedEventPtr& event : batch) {
    Enqueue(event);
    if (pending_.size() > max_pending_) {
      pending_.clear();
      by_chainlet_.clear();
      listing_.Stop();
      return false;
    }
  }
  return true;
}

absl::StatusOr<bool> FeedBacklog::Next(v1::WatchDecisionFeedResponse* out) {
  out->Clear();
  out->set_feed_id(feed_id_);
  out->set_resumed(resumed_);
  switch (phase_) {
    case Phase::kNotStarted:
      return false;
    case Phase::kInitialState:
      if (const v1::ScalingDecision* listed = listing_.Next()) {
        *out->mutable_decision() = *listed;
        out->set_sequence(start_sequence_);
        return true;
      }
      if (!listing_.status().ok()) return listing_.status();
      phase_ = Phase::kMarker;
      [[fallthrough]];
    case Phase::kMarker:
      out->set_initial_state_done(true);
      out->set_sequence(start_sequence_);
      phase_ = Phase::kLive;
      return true;
    case Phase::kLive:
      if (pending_.empty()) return false;
      const FeedEventPtr event = std::move(pending_.front());
      pending_.pop_front();
      const v1::ScalingDecision& d = event->decision;
      by_chainlet_.erase(EncodeChainletKey(d.chain_id(), d.env_name(), d.chainlet_name()));
      *out->mutable_decision() = d;
      out->set_sequence(event->sequence);
      return true;
  }
  return false;
}

}  // namespace chainscale
