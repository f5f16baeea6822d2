// The console's chart history: points in order, one per resolution, and its bounds (points
// per chainlet, chainlets tracked, the least recently updated forgotten first).
#include "console/decision_history.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"

namespace chainscale {
namespace {

using google::protobuf::util::TimeUtil;

v1::ScalingDecision Decision(const std::string& chainlet, int64_t millis, int32_t replicas) {
  v1::ScalingDecision d;
  d.set_chain_id("demo");
  d.set_env_name("production");
  d.set_chainlet_name(chainlet);
  d.set_desired_replicas(replicas);
  d.set_avg_in_flight_requests(replicas * 7.0);
  d.set_status(v1::ScalingDecision::ACCEPTED);
  *d.mutable_decided_at() = TimeUtil::MillisecondsToTimestamp(1'700'000'000'000 + millis);
  return d;
}

TEST(DecisionHistoryTest, KeepsPointsOldestFirstOnePerResolution) {
  DecisionHistory history;
  history.Record(Decision("A", 0, 1));
  history.Record(Decision("A", 400, 2));   // within the same second: replaces
  history.Record(Decision("A", 1500, 4));
  const v1::ChainletDecisionHistory h = history.Get("demo", "production", "A");
  ASSERT_EQ(h.points_size(), 2);
  EXPECT_EQ(h.points(0).desired_replicas(), 2);
  EXPECT_EQ(TimeUtil::TimestampToMilliseconds(h.points(0).time()), 1'700'000'000'400);
  EXPECT_EQ(h.points(1).desired_replicas(), 4);
  EXPECT_DOUBLE_EQ(h.points(1).avg_in_flight_requests(), 28.0);
  EXPECT_EQ(h.points(1).status(), v1::ScalingDecision::ACCEPTED);
  EXPECT_EQ(h.chainlet_name(), "A");
  EXPECT_EQ(history.Get("demo", "production", "B").points_size(), 0);
}

TEST(DecisionHistoryTest, PointsPerChainletStayWithinTheSpan) {
  DecisionHistoryOptions options;
  options.span = absl::Minutes(10);
  options.resolution = absl::Seconds(1);
  DecisionHistory history(options);
  EXPECT_EQ(history.max_points(), 601u);
  for (int s = 0; s < 2000; ++s) history.Record(Decision("A", s * 1000, s % 7));
  const v1::ChainletDecisionHistory h = history.Get("demo", "production", "A");
  ASSERT_EQ(h.points_size(), 601);
  // The last ten minutes: seconds 1399 to 1999.
  EXPECT_EQ(TimeUtil::TimestampToMilliseconds(h.points(0).time()), 1'700'000'000'000 + 1'399'000);
  EXPECT_EQ(TimeUtil::TimestampToMilliseconds(h.points(600).time()),
            1'700'000'000'000 + 1'999'000);
}

TEST(DecisionHistoryTest, TracksAtMostMaxChainletsForgettingTheLeastRecentlyUpdated) {
  DecisionHistoryOptions options;
  options.max_chainlets = 3;
  DecisionHistory history(options);
  history.Record(Decision("A", 0, 1));
  history.Record(Decision("B", 0, 1));
  history.Record(Decision("C", 0, 1));
  history.Record(Decision("A", 2000, 2));  // A is now the most recently updated
  history.Record(Decision("D", 2000, 1));  // B goes
  EXPECT_EQ(history.chainlets(), 3u);
  EXPECT_EQ(history.Get("demo", "production", "B").points_size(), 0);
  EXPECT_EQ(history.Get("demo", "production", "A").points_size(), 2);
  EXPECT_EQ(history.Get("demo", "production", "C").points_size(), 1);
  EXPECT_EQ(history.Get("demo", "production", "D").points_size(), 1);
  for (int i = 0; i < 100; ++i) history.Record(Decision(absl::StrCat("N", i), 3000, 1));
  EXPECT_EQ(history.chainlets(), 3u);
}

TEST(DecisionHistoryTest, TimeNeverGoesBackwards) {
  DecisionHistory history;
  history.Record(Decision("A", 5000, 1));
  history.Record(Decision("A", 3000, 2));  // another agent's clock, a little behind
  const v1::ChainletDecisionHistory h = history.Get("demo", "production", "A");
  ASSERT_EQ(h.points_size(), 1);
  EXPECT_EQ(h.points(0).desired_replicas(), 2);
  EXPECT_EQ(TimeUtil::TimestampToMilliseconds(h.points(0).time()), 1'700'000'000'000 + 5000);
}

}  // namespace
}  // namespace chainscale
