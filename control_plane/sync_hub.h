// SyncHub: the control plane's side of the Sync stream, without gRPC. It keeps one
// subscription per connected agent and decides what each is sent next: a snapshot read
// at one revision when the agent is new, on another cluster id or older than the
// retained log; otherwise every later change, in revision order, filtered by the agent's
// selector; and a progress message when it is idle and up to date. It counts acks, so an
// update can wait until every agent serving its environment has applied it.
//
// The store is the buffer: a subscription holds only its position in the revision log,
// so memory per agent stays bounded however far behind it falls, and a slow agent never
// blocks writers or other agents. An agent that falls behind the retained log is
// resynchronised by snapshot.
#ifndef CHAINSCALE_CONTROL_PLANE_SYNC_HUB_H_
#define CHAINSCALE_CONTROL_PLANE_SYNC_HUB_H_

#include <cstdint>
#include <deque>
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
#include "control_plane/store.h"

namespace chainscale {

// What a stream implements so the hub can tell it that there may be something to send.
// Wake must not block; it is called from writers' threads and the progress ticker.
class SyncSubscriber {
 public:
  virtual ~SyncSubscriber() = default;
  virtual void Wake() = 0;
};

struct SyncHubOptions {
  int snapshot_chunk_chainlets = 1000;   // chainlets per snapshot message
  int log_read_batch = 256;              // log entries read per store read...
  size_t log_read_bytes = 1 << 20;       // ...and bytes: bounds what a stream holds
  absl::Duration progress_interval = absl::Seconds(1);
};

enum class AckOutcome {
  kAllAcked,       // every agent serving the environment applied the revision
  kNoSubscribers,  // no connected agent serves the environment
  kTimedOut,       // some agent had not applied it by the deadline
};

class SyncHub {
 public:
  using SubscriptionId = uint64_t;

  // `store` must outlive the hub. Starts the progress ticker.
  SyncHub(Store* store, SyncHubOptions options);
  ~SyncHub();  // stops the ticker

  SyncHub(const SyncHub&) = delete;
  SyncHub& operator=(const SyncHub&) = delete;

  // Registers an agent after its hello. `subscriber` is woken whenever there may be
  // something to send; the hub keeps it until Unsubscribe.
  SubscriptionId Subscribe(const v1::SyncHello& hello,
                           std::shared_ptr<SyncSubscriber> subscriber)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Unsubscribe(SubscriptionId id) ABSL_LOCKS_EXCLUDED(mu_);

  // The next message for the subscription, or nothing when it is up to date and no
  // progress is due. Call from one thread at a time per subscription (the stream's
  // writer); store reads happen outside the hub's lock.
  absl::StatusOr<std::optional<v1::SyncResponse>> Next(SubscriptionId id)
      ABSL_LOCKS_EXCLUDED(mu_);

  // The agent applied everything up to `revision`.
  void Ack(SubscriptionId id, int64_t revision) ABSL_LOCKS_EXCLUDED(mu_);

  // A revision was committed: wakes every subscription.
  void Published() ABSL_LOCKS_EXCLUDED(mu_);

  // Waits until every subscription serving (chain_id, env_name) acked `revision`.
  AckOutcome WaitForAcks(absl::string_view chain_id, absl::string_view env_name,
                         int64_t revision, absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);

  struct SubscriptionStats {
    std::string agent_id;
    int64_t lag = 0;             // revisions committed but not yet sent
    size_t buffered_bytes = 0;   // read from the store and not yet sent
  };
  int subscription_count() const ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<SubscriptionStats> Stats() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Subscription {
    std::string agent_id;
    v1::Selector selector;
    std::shared_ptr<SyncSubscriber> subscriber;
    int64_t read_revision = 0;   // the revision log has been read up to here
    int64_t sent_revision = 0;   // everything up to here has been sent (or skipped)
    int64_t acked_revision = 0;
    std::deque<v1::SyncChange> pending;  // read and selected, not yet sent (≤ one batch)
    size_t pending_bytes = 0;
    size_t snapshot_bytes = 0;           // of the snapshot being sent
    bool snapshot_needed = false;
    std::unique_ptr<StoreSnapshot> snapshot;  // being sent, in chunks
    size_t snapshot_offset = 0;
    bool progress_due = false;
  };

  void TickProgress() ABSL_LOCKS_EXCLUDED(mu_);
  // Filters `change` by `selector`; empty when nothing in it is selected.
  static std::optional<v1::SyncChange> Filter(const v1::SyncChange& change,
                                              const v1::Selector& selector);

  Store* const store_;
  const SyncHubOptions options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<SubscriptionId, Subscription> subscriptions_ ABSL_GUARDED_BY(mu_);
  SubscriptionId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread ticker_;
};

}  // namespace chainscale

#endif  // CHAINSCALE_CONTROL_PLANE_SYNC_HUB_H_
