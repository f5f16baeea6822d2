// DecisionHistory: the recent stored decisions of each chainlet, for the console's chart of
// load, capacity and replicas (DESIGN §13), so the chart has its last minutes the moment
// the page opens. The control plane feeds it every stored decision (from its decision
// feed); it lives in memory only and starts empty when the control plane starts.
//
// Bounded: per chainlet, the points of the last `span` before its newest, at most one per
// `resolution` (a newer decision within it replaces the point), so at most
// span / resolution + 1 points (601 for 10 min at 1 s); at most `max_chainlets`
// chainlets, the least recently updated forgotten first. A point takes 24 bytes, so the
// defaults hold at most about 14 MiB of points.
#ifndef CHAINSCALE_CONSOLE_DECISION_HISTORY_H_
#define CHAINSCALE_CONSOLE_DECISION_HISTORY_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "chainscale/v1/control_plane.pb.h"

namespace chainscale {

struct DecisionHistoryOptions {
  absl::Duration span = absl::Minutes(10);
  absl::Duration resolution = absl::Seconds(1);
  size_t max_chainlets = 1'000;
};

class DecisionHistory {
 public:
  explicit DecisionHistory(DecisionHistoryOptions options = {});

  // Adds a stored decision to its chainlet's history. Thread-safe.
  void Record(const v1::ScalingDecision& decision) ABSL_LOCKS_EXCLUDED(mu_);
  // The chainlet's points, oldest first (none when nothing was recorded for it).
  v1::ChainletDecisionHistory Get(absl::string_view chain_id, absl::string_view env_name,
                                  absl::string_view chainlet_name) const ABSL_LOCKS_EXCLUDED(mu_);

  // Chainlets with a history now, and the most points any may hold.
  size_t chainlets() const ABSL_LOCKS_EXCLUDED(mu_);
  size_t max_points() const { return max_points_; }

 private:
  struct Point {
    int64_t time_us = 0;
    double avg_in_flight_requests = 0;
    int32_t desired_replicas = 0;
    v1::ScalingDecision::Status status = v1::ScalingDecision::STATUS_UNSPECIFIED;
  };
  struct Series {
    std::deque<Point> points;
    std::list<std::string>::iterator recency;  // its place in recency_
  };

  const DecisionHistoryOptions options_;
  const size_t max_points_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Series> series_ ABSL_GUARDED_BY(mu_);
  // Chainlet keys, the most recently updated first.
  std::list<std::string> recency_ ABSL_GUARDED_BY(mu_);
};

}  // namespace chainscale

#endif  // CHAINSCALE_CONSOLE_DECISION_HISTORY_H_
