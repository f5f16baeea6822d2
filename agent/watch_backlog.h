// WatchBacklog: what one WatchScalingDecisions stream has yet to send. First the current
// decisions, read from a listing a page at a time when the stream has room for them
// (never copied whole per watcher); then the batches of decisions the loop made since,
// shared with every other watcher and the control plane's sender, never copied per
// watcher. The backlog keeps references and its position in the first batch, skips
// decisions outside its filter, and refuses to grow past a bound, so a watcher that cannot
// keep up costs bounded memory and is ended rather than slowing anything else.
// Not thread-safe: the stream guards it with its mutex.
#ifndef CHAINSCALE_AGENT_WATCH_BACKLOG_H_
#define CHAINSCALE_AGENT_WATCH_BACKLOG_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "agent/decision_loop.h"
#include "common/decision_filter.h"
#include "common/decision_listing.h"

namespace chainscale {

class WatchBacklog {
 public:
  using PageReader = DecisionListing::PageReader;

  // Only decisions of `chain_id` (all when empty) and `env_name` (all when empty).
  WatchBacklog(std::string chain_id, std::string env_name)
      : filter_{std::move(chain_id), std::move(env_name)} {}

  // Sends the listing `read_page` reads, about `expected` decisions, before any batch.
  void StartListing(size_t expected, PageReader read_page);

  // Adds a batch. False, emptying the backlog, when the decisions waiting would then be
  // more than `max_waiting`: the watcher cannot keep up.
  bool Add(DecisionBatchPtr batch, size_t max_waiting);

  // The next decision to send, or nullptr when none waits. It stays valid until the next
  // call of Next (the backlog keeps its batch or page alive).
  const v1::ScalingDecision* Next();

  // Decisions added and not yet passed by Next (those outside the filter included), and
  // what remains of the listing.
  size_t waiting() const { return waiting_ + listing_.left(); }

 private:
  const DecisionFilter filter_;
  DecisionListing listing_;
  std::deque<DecisionBatchPtr> batches_;
  size_t position_ = 0;  // in batches_.front()
  size_t waiting_ = 0;
  DecisionBatchPtr sending_;  // holds the batch of the decision Next returned last
};

}  // namespace chainscale

#endif  // CHAINSCALE_AGENT_WATCH_BACKLOG_H_
