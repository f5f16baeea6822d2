// DecisionFeed: the control plane's feed of stored decisions (DESIGN §11 "One decision
// feed"), behind ControlPlane/WatchScalingDecisions and the console's chart history.
//
// The committer tells the feed what it stored (Publish, on the committer's thread: the
// feed numbers the decisions, keeps the latest in a bounded ring and hands them to its own
// thread, so storing never waits for a watcher). The feed's thread passes each batch to
// the observer (the console's history) and to every watcher. A watcher starts from the
// stored decisions, read from the store a page at a time as its stream takes them, or,
// resuming, from what the ring still holds after the position it names.
//
// FeedBacklog is what one watcher has yet to send: the initial state, the message that
// ends it, then the decisions stored since, only the latest per chainlet (a watcher that
// reads slowly skips intermediate decisions; sequences still grow from message to
// message). Past a bound on the chainlets waiting, the watcher is given up on.
#ifndef CHAINSCALE_CONTROL_PLANE_DECISION_FEED_H_
#define CHAINSCALE_CONTROL_PLANE_DECISION_FEED_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "chainscale/v1/control_plane.pb.h"
#include "common/decision_filter.h"
#include "common/decision_listing.h"
#include "control_plane/store.h"

namespace chainscale {

// A stored decision and its place in the feed; shared by the ring and every watcher.
struct FeedEvent {
  int64_t sequence = 0;
  v1::ScalingDecision decision;
};
using FeedEventPtr = std::shared_ptr<const FeedEvent>;
using FeedBatch = std::vector<FeedEventPtr>;

// Where a watcher starts: the feed position, and whether it resumes after it (then
// `missed` holds what the ring had after that position) or sends the initial state.
struct FeedStart {
  int64_t sequence = 0;
  bool resumed = false;
};

// A watcher of the feed. Both calls come with the feed's watcher lock held (the watcher
// must not call the feed from them) and must not block.
class FeedSink {
 public:
  virtual ~FeedSink() = default;
  // Once, from AddSink, before any Offer.
  virtual void Begin(const FeedStart& start, const FeedBatch& missed) = 0;
  // Decisions stored since, in sequence order, on the feed's thread.
  virtual void Offer(const FeedBatch& batch) = 0;
};

struct DecisionFeedOptions {
  // Latest stored decisions kept for streams that resume (a few hundred bytes each).
  size_t ring_capacity = 10'000;
  // Stored decisions read per page for a watcher's initial state.
  int page_size = 256;
};

class DecisionFeed {
 public:
  using Observer = std::function<void(const FeedBatch& batch)>;

  // `store` must outlive the feed. `observer` (may be empty) hears every batch on the
  // feed's thread, before the watchers.
  DecisionFeed(const Store* store, DecisionFeedOptions options, Observer observer = nullptr);
  // Hands out what was published, then stops the thread.
  ~DecisionFeed();

  DecisionFeed(const DecisionFeed&) = delete;
  DecisionFeed& operator=(const DecisionFeed&) = delete;

  // Random, new for each feed: sequences of another feed (an earlier process) mean
  // nothing here.
  const std::string& feed_id() const { return feed_id_; }

  // Decisions just stored, in the order stored. Called on the committer's thread: it
  // numbers them and queues them for the feed's thread, under a short lock.
  void Publish(std::vector<v1::ScalingDecision> stored) ABSL_LOCKS_EXCLUDED(ring_mu_);

  // Registers `sink` and calls its Begin: resumed after `resume_after` when `feed_id` is
  // this feed's and the ring holds every decision stored after it, otherwise at the
  // current position (the sink then sends the initial state). From then on the sink is
  // offered every later decision, gap-free.
  void AddSink(FeedSink* sink, absl::string_view feed_id, int64_t resume_after)
      ABSL_LOCKS_EXCLUDED(sinks_mu_, ring_mu_);
  // After it returns, `sink` is never called again.
  void RemoveSink(FeedSink* sink) ABSL_LOCKS_EXCLUDED(sinks_mu_);

  // OK when the filter is valid and names an existing chain (and environment);
  // INVALID_ARGUMENT or NOT_FOUND otherwise.
  absl::Status CheckFilter(const DecisionFilter& filter) const;
  // Reads the stored decisions that match `filter` a page at a time, for a DecisionListing.
  DecisionListing::PageReader PageReaderFor(const DecisionFilter& filter) const;

  // The sequence of the last decision published.
  int64_t last_sequence() const ABSL_LOCKS_EXCLUDED(ring_mu_);

 private:
  void Run();

  const Store* const store_;
  const DecisionFeedOptions options_;
  const Observer observer_;
  const std::string feed_id_;

  mutable absl::Mutex ring_mu_ ABSL_ACQUIRED_AFTER(sinks_mu_);
  std::deque<FeedEventPtr> ring_ ABSL_GUARDED_BY(ring_mu_);
  FeedBatch undelivered_ ABSL_GUARDED_BY(ring_mu_);
  int64_t last_sequence_ ABSL_GUARDED_BY(ring_mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(ring_mu_) = false;

  // Held while a batch is handed to the sinks, so a sink added or removed sees a clean
  // boundary.
  absl::Mutex sinks_mu_;
  absl::flat_hash_set<FeedSink*> sinks_ ABSL_GUARDED_BY(sinks_mu_);
  int64_t delivered_sequence_ ABSL_GUARDED_BY(sinks_mu_) = 0;

  std::thread thread_;
};

// What one watcher has yet to send. Not thread-safe: the stream guards it with its mutex.
class FeedBacklog {
 public:
  // `max_pending`: chainlets whose latest decision may wait to be sent.
  FeedBacklog(DecisionFilter filter, std::string feed_id, size_t max_pending)
      : filter_(std::move(filter)), feed_id_(std::move(feed_id)), max_pending_(max_pending) {}

  // Starts with the initial state `read_page` reads, at position `sequence`.
  void StartWithInitialState(int64_t sequence, DecisionListing::PageReader read_page);
  // Starts after `sequence` with the decisions stored since.
  void StartResumed(int64_t sequence, const FeedBatch& missed);

  // Decisions stored since. False, emptying the backlog, when more than max_pending
  // chainlets would then wait: the watcher cannot keep up.
  bool Add(const FeedBatch& batch);

  // The next message into `out`: true when one was written, false when nothing waits;
  // the store's error when a page of the initial state could not be read.
  absl::StatusOr<bool> Next(v1::WatchDecisionFeedResponse* out);

  // Chainlets whose decision waits (the initial state not counted).
  size_t pending() const { return pending_.size(); }

 private:
  enum class Phase { kNotStarted, kInitialState, kMarker, kLive };

  void Enqueue(const FeedEventPtr& event);

  const DecisionFilter filter_;
  const std::string feed_id_;
  const size_t max_pending_;
  Phase phase_ = Phase::kNotStarted;
  int64_t start_sequence_ = 0;
  bool resumed_ = false;
  DecisionListing listing_;
  // Oldest first; a chainlet's newer decision replaces its older one and moves to the
  // back, so sequences grow along the list.
  std::list<FeedEventPtr> pending_;
  absl::flat_hash_map<std::string, std::list<FeedEventPtr>::iterator> by_chainlet_;
};

}  // namespace chainscale

#endif  // CHAINSCALE_CONTROL_PLANE_DECISION_FEED_H_
