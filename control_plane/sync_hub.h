// SyncHub: the control plane's side of the Sync stream, without gRPC. It keeps one
// subscription per connected agent and decides what each is sent next: a snapshot read at
// one revision when the agent is new, on another cluster id or older than the retained
// log; otherwise every later change, in revision order, filtered by the agent's selector;
// and a progress message when it is idle and up to date. It counts acks, so an update can
// wait until every agent serving its environment has applied it, and takes the decisions
// agents send back (validated, then stored by the Committer).
//
// Off the write path (DESIGN §5): a commit only hands its changes to the hub (Published,
// O(1)); the hub's own dispatch threads read the store, filter, split and start writes.
// Nothing reads the store on a committing thread or inside a gRPC reaction. Memory per
// subscription is bounded: at most one log read of selected changes and one snapshot chunk
// wait to be sent, and a snapshot is read from a RocksDB snapshot chunk by chunk. Recent
// changes are kept in a bounded cache shared by all subscriptions, so agents that keep up
// never cause store reads; one that falls behind reads from the store, and one that falls
// behind the retained log is resynchronised by snapshot.
//
// Every message fits: none exceeds max_message_bytes (1 MiB); a change touching more is
// sent in parts (SyncChange.continued) that the agent applies at the last one.
#ifndef CHAINSCALE_CONTROL_PLANE_SYNC_HUB_H_
#define CHAINSCALE_CONTROL_PLANE_SYNC_HUB_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "chainscale/v1/control_plane.pb.h"
#include "common/selector.h"
#include "control_plane/committer.h"
#include "control_plane/coordinator.h"
#include "control_plane/store.h"

namespace chainscale {

// Largest message on a Sync stream, either way (DESIGN §5).
inline constexpr size_t kSyncMaxMessageBytes = 1 << 20;

// One agent's stream as the hub sees it. Both calls must not block; they may come from the
// hub's threads at any time, also after the stream has ended (then they do nothing).
class SyncSink {
 public:
  virtual ~SyncSink() = default;
  // Starts writing `message`; the stream calls SyncHub::WriteDone when it completes.
  virtual void Send(v1::SyncResponse message) = 0;
  // Ends the stream with `status`.
  virtual void End(const absl::Status& status) = 0;
};

struct SyncHubOptions {
  size_t max_message_bytes = kSyncMaxMessageBytes;
  // Snapshot chunks are smaller: a stream holds about three times its chunk in memory
  // while it is written, and a snapshot is many chunks anyway.
  size_t snapshot_chunk_bytes = 256 << 10;
  // Snapshot chunks sent ahead of the agent's acknowledged count (SyncAck.snapshot_chunks).
  int snapshot_window_chunks = 4;
  int log_read_batch = 256;                // log entries read per store read...
  size_t log_read_bytes = 1 << 20;         // ...and bytes: bounds what a stream holds
  size_t change_cache_bytes = 64 << 20;    // recent changes kept for every subscription
  absl::Duration progress_interval = absl::Seconds(1);
  int dispatch_threads = 2;
  // Decisions agents send back: largest replica count and reason accepted.
  int32_t max_replicas = 1000;
  size_t max_reason_bytes = 1024;
};

enum class AckOutcome {
  kAllAcked,       // every agent serving the environment applied the revision
  kNoSubscribers,  // no connected agent serves the environment
  kTimedOut,       // some agent had not applied it by the deadline
};

class SyncHub {
 public:
  using SubscriptionId = uint64_t;

  // `store` and `committer` must outlive the hub. Starts the dispatch and progress threads.
  SyncHub(Store* store, Committer* committer, SyncHubOptions options);
  ~SyncHub();  // ends every subscription's stream with UNAVAILABLE and stops the threads

  SyncHub(const SyncHub&) = delete;
  SyncHub& operator=(const SyncHub&) = delete;

  // Ownership (DESIGN §11): the hub tells `coordinator` of agents that come and go, fences
  // the decisions agents send with it, and sends agents the routes it delivers. Set once,
  // before any agent subscribes; without it every agent decides what its selector selects.
  void SetCoordinator(Coordinator* coordinator) ABSL_LOCKS_EXCLUDED(mu_);
  // Routes for agents, from the coordinator's thread.
  void DeliverRoutes(std::vector<RouteDelivery> deliveries) ABSL_LOCKS_EXCLUDED(mu_);

  // Registers an agent after its hello (INVALID_ARGUMENT for a malformed one). A stream
  // already open for the same agent id is ended (ABORTED): one stream per agent.
  absl::StatusOr<SubscriptionId> Subscribe(const v1::SyncHello& hello,
                                           std::shared_ptr<SyncSink> sink)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Unsubscribe(SubscriptionId id) ABSL_LOCKS_EXCLUDED(mu_);

  // The stream finished writing the last message it was sent.
  void WriteDone(SubscriptionId id) ABSL_LOCKS_EXCLUDED(mu_);
  // The agent applied everything up to `revision`. INVALID_ARGUMENT when that is above
  // every revision sent on the stream (the stream must end).
  // `snapshot_chunks`: chunks of the snapshot in progress the agent has received; it
  // opens the window for the next ones (a count above what was sent counts as what was).
  absl::Status Ack(SubscriptionId id, int64_t revision, int snapshot_chunks = 0)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Decisions the agent sends back: each is validated (range, reason size, the agent
  // serving its environment), the valid ones are stored, and the agent is sent a
  // decisions_ack for `decisions.sequence()` once they are. `resume` runs when the hub can
  // take the stream's next message (the stream holds off reading until then).
  void TakeDecisions(SubscriptionId id, const v1::SyncDecisions& decisions,
                     std::function<void()> resume) ABSL_LOCKS_EXCLUDED(mu_);

  // Revisions were committed (in order, each after the previous one). O(1) for the caller.
  void Published(const std::vector<std::shared_ptr<const v1::SyncChange>>& changes)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Waits until every subscription serving (chain_id, env_name) acked `revision`.
  AckOutcome WaitForAcks(absl::string_view chain_id, absl::string_view env_name,
                         int64_t revision, absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);

  struct SubscriptionStats {
    std::string agent_id;
    int64_t lag = 0;             // revisions committed but not yet sent
    size_t buffered_bytes = 0;   // read and not yet sent
  };
  int subscription_count() const ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<SubscriptionStats> Stats() const ABSL_LOCKS_EXCLUDED(mu_);
  // Decisions refused since the start, and stored.
  int64_t decisions_refused() const ABSL_LOCKS_EXCLUDED(mu_);
  int64_t decisions_stored() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Subscription {
    std::string agent_id;
    v1::Selector selector;
    std::shared_ptr<SyncSink> sink;
    int64_t read_revision = 0;     // changes have been read (into `pending`) up to here
    int64_t sent_revision = 0;     // everything up to here has been sent (or skipped)
    int64_t highest_sent = 0;      // highest revision any message named (acks above: lie)
    int64_t acked_revision = 0;
    std::deque<v1::SyncResponse> pending;  // prepared, not yet sent
    size_t pending_bytes = 0;
    std::deque<int64_t> pending_revisions;  // sent_revision after each pending message
    bool snapshot_needed = false;
    std::unique_ptr<StoreSnapshotReader> snapshot;  // being sent, chunk by chunk
    int snapshot_chunks_sent = 0;   // of the snapshot in progress
    int snapshot_chunks_acked = 0;  // ... that the agent said it received
    std::optional<v1::SyncDecisionsAck> decisions_ack;
    std::deque<v1::SyncResponse> owners;  // routes to send, before any change
    bool progress_due = false;
    bool writing = false;   // a message is being written
    bool busy = false;      // a dispatch thread is preparing its next message
    bool queued = false;    // in the run queue
    bool progress_queued = false;  // in the progress queue
    bool refusal_logged = false;
  };

  void Dispatch() ABSL_LOCKS_EXCLUDED(mu_);
  void TickProgress() ABSL_LOCKS_EXCLUDED(mu_);
  // Queues `id` when it may have something to send and nobody works on it.
  void MaybeQueueLocked(SubscriptionId id, Subscription& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Work other than a progress message, which waits behind every other stream's work.
  bool HasUrgentWorkLocked(const Subscription& s) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // For an idle, up-to-date subscription: moves it past cached changes that touch none of
  // its environments, without a dispatch. False when one concerns it (or it is not idle).
  bool SkipUnselectedLocked(Subscription& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A snapshot is in progress and as far ahead of the agent's acks as it may go.
  bool SnapshotWindowFullLocked(const Subscription& s) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Prepares and sends the next message of `id`, reading the store without the lock.
  void Serve(SubscriptionId id) ABSL_LOCKS_EXCLUDED(mu_);
  // The changes after `after` up to the head, from the cache when it holds them; empty
  // with `from_cache` false when the store must be read.
  bool ChangesFromCacheLocked(int64_t after, std::vector<std::shared_ptr<const v1::SyncChange>>* out)
      const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Turns changes into messages of at most max_message_bytes for `selector`.
  void PrepareChanges(const std::vector<std::shared_ptr<const v1::SyncChange>>& changes,
                      const v1::Selector& selector, std::deque<v1::SyncResponse>* out,
                      std::vector<int64_t>* revisions) const;
  absl::Status ValidateDecision(const Subscription& s, const v1::ScalingDecision& d) const;

  Store* const store_;
  Committer* const committer_;
  const SyncHubOptions options_;
  mutable absl::Mutex mu_;
  Coordinator* coordinator_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::flat_hash_map<SubscriptionId, Subscription> subscriptions_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, SubscriptionId> by_agent_ ABSL_GUARDED_BY(mu_);
  SubscriptionId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::deque<SubscriptionId> run_queue_ ABSL_GUARDED_BY(mu_);
  // Idle subscriptions due a progress message, served when the run queue is empty: with a
  // thousand streams the per-interval progress must not delay a change (DESIGN §5).
  std::deque<SubscriptionId> progress_queue_ ABSL_GUARDED_BY(mu_);
  bool scan_ ABSL_GUARDED_BY(mu_) = false;  // every subscription may have work
  // Recent changes, oldest first, covering revisions (cache_after_, head_].
  struct CachedChange {
    std::shared_ptr<const v1::SyncChange> change;
    std::vector<std::pair<std::string, std::string>> envs;  // the chain environments touched
  };
  std::deque<CachedChange> cache_ ABSL_GUARDED_BY(mu_);
  size_t cache_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t cache_after_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t head_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t decisions_refused_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t decisions_stored_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> dispatchers_;
  std::thread ticker_;
};

}  // namespace chainscale

#endif  // CHAINSCALE_CONTROL_PLANE_SYNC_HUB_H_
