#include "console/decision_history.h"

#include <algorithm>

#include "common/chainlet_key.h"
#include "google/protobuf/util/time_util.h"

namespace chainscale {

using google::protobuf::util::TimeUtil;

DecisionHistory::DecisionHistory(DecisionHistoryOptions options)
    : options_(options),
      max_points_(static_cast<size_t>(options.span / options.resolution) + 1) {}

void DecisionHistory::Record(const v1::ScalingDecision& d) {
  Point point;
  point.time_us = TimeUtil::TimestampToMicroseconds(d.decided_at());
  point.avg_in_flight_requests = d.avg_in_flight_requests();
  point.desired_replicas = d.desired_replicas();
  point.status = d.status();
  const int64_t resolution_us = absl::ToInt64Microseconds(options_.resolution);
  const int64_t span_us = absl::ToInt64Microseconds(options_.span);
  std::string key = EncodeChainletKey(d.chain_id(), d.env_name(), d.chainlet_name());

  absl::MutexLock lock(&mu_);
  auto it = series_.find(key);
  if (it == series_.end()) {
    if (series_.size() >= options_.max_chainlets && !recency_.empty()) {
      series_.erase(recency_.back());
      recency_.pop_back();
    }
    recency_.push_front(key);
    it = series_.emplace(std::move(key), Series{{}, recency_.begin()}).first;
  } else {
    recency_.splice(recency_.begin(), recency_, it->second.recency);
  }
  std::deque<Point>& points = it->second.points;
  // Decisions of two agents (a takeover) may come a little out of clock order: a point
  // never goes back in time.
  if (!points.empty()) point.time_us = std::max(point.time_us, points.back().time_us);
  if (!points.empty() && point.time_us - points.back().time_us < resolution_us) {
    points.back() = point;
  } else {
    points.push_back(point);
  }
  while (points.size() > max_points_ ||
         (points.size() > 1 && points.front().time_us < point.time_us - span_us)) {
    points.pop_front();
  }
}

v1::ChainletDecisionHistory DecisionHistory::Get(absl::string_view chain_id,
                                                 absl::string_view env_name,
                                                 absl::string_view chainlet_name) const {
  v1::ChainletDecisionHistory history;
  history.set_chain_id(std::string(chain_id));
  history.set_env_name(std::string(env_name));
  history.set_chainlet_name(std::string(chainlet_name));
  absl::MutexLock lock(&mu_);
  auto it = series_.find(EncodeChainletKey(chain_id, env_name, chainlet_name));
  if (it == series_.end()) return history;
  for (const Point& p : it->second.points) {
    v1::DecisionHistoryPoint* out = history.add_points();
    *out->mutable_time() = TimeUtil::MicrosecondsToTimestamp(p.time_us);
    out->set_desired_replicas(p.desired_replicas);
    out->set_avg_in_flight_requests(p.avg_in_flight_requests);
    out->set_status(p.status);
  }
  return history;
}

size_t DecisionHistory::chainlets() const {
  absl::MutexLock lock(&mu_);
  return series_.size();
}

}  // namespace chainscale
