// Pins the load window of DESIGN §6: per-second totals over sources, values carried
// forward until stale, the mean over the window or over the seconds observed so far; and
// checks it against a brute-force reference on seeded random inputs.
#include "common/load_window.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace chainscale {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1'700'000'000);

absl::Time At(double seconds) { return kStart + absl::Seconds(seconds); }

LoadSample Requests(double in_flight) { return LoadSample{std::llround(in_flight * 1000), {}}; }

TEST(LoadWindowTest, NothingReportedAveragesToZeroOverNoSeconds) {
  LoadWindow window(60, 10);
  WindowLoad load = window.Average(At(5));
  EXPECT_EQ(load.seconds, 0);
  EXPECT_EQ(load.request_millis_sum, 0);
  EXPECT_DOUBLE_EQ(load.MeanRequests(), 0.0);
}

// The second in progress never counts: a decision does not depend on whether it lands
// before or after a report in that second.
TEST(LoadWindowTest, TheSecondInProgressNeverCounts) {
  LoadWindow window(60, 10);
  ASSERT_TRUE(window.Report("r1", Requests(6), At(0.2)).ok());
  EXPECT_EQ(window.Average(At(0.9)).seconds, 0);
  ASSERT_TRUE(window.Report("r1", Requests(10), At(1.5)).ok());
  WindowLoad before = window.Average(At(1.1));
  EXPECT_EQ(before.seconds, 1);
  EXPECT_DOUBLE_EQ(before.MeanRequests(), 6.0);
  WindowLoad after = window.Average(At(1.9));
  EXPECT_EQ(after.seconds, 1);
  EXPECT_DOUBLE_EQ(after.MeanRequests(), 6.0);
}

TEST(LoadWindowTest, FirstCompletedSecondCountsAtFullStrength) {
  LoadWindow window(60, 10);
  ASSERT_TRUE(window.Report("r1", Requests(6), At(0.2)).ok());
  WindowLoad load = window.Average(At(1.0));
  EXPECT_EQ(load.seconds, 1);
  EXPECT_DOUBLE_EQ(load.MeanRequests(), 6.0);
}

// The cold-start path has only the second in progress to go on.
TEST(LoadWindowTest, AverageWithCurrentCountsTheSecondInProgress) {
  LoadWindow window(3, 10);
  ASSERT_TRUE(window.Report("r1", Requests(6), At(0.2)).ok());
  WindowLoad load = window.AverageWithCurrent(At(0.3));
  EXPECT_EQ(load.seconds, 1);
  EXPECT_DOUBLE_EQ(load.MeanRequests(), 6.0);
  ASSERT_TRUE(window.Report("r1", Requests(9), At(5.5)).ok());
  // Seconds 3 and 4 (6 carried forward) and the second in progress, 5, at 9.
  load = window.AverageWithCurrent(At(5.6));
  EXPECT_EQ(load.seconds, 3);
  EXPECT_EQ(load.request_millis_sum, (6 + 6 + 9) * 1000);
}

TEST(LoadWindowTest, MeanIsOverSecondsObservedUntilTheWindowFills) {
  LoadWindow window(10, 100);
  ASSERT_TRUE(window.Report("r1", Requests(4), At(0)).ok());
  ASSERT_TRUE(window.Report("r1", Requests(8), At(2)).ok());
  // Seconds 0, 1 hold 4; seconds 2, 3 hold 8 (carried forward).
  WindowLoad load = window.Average(At(4.5));
  EXPECT_EQ(load.seconds, 4);
  EXPECT_EQ(load.request_millis_sum, 24'000);
  EXPECT_DOUBLE_EQ(load.MeanRequests(), 6.0);
  // Twenty seconds on, only the last ten count: all 8.
  load = window.Average(At(22));
  EXPECT_EQ(load.seconds, 10);
  EXPECT_DOUBLE_EQ(load.MeanRequests(), 8.0);
}

TEST(LoadWindowTest, SecondTotalSumsTheLatestValueOfEachSource) {
  LoadWindow window(10, 10);
  ASSERT_TRUE(window.Report("r1", Requests(3), At(0.1)).ok());
  ASSERT_TRUE(window.Report("r1", Requests(5), At(0.6)).ok());  // replaces r1's 3 within the same second
  ASSERT_TRUE(window.Report("r2", Requests(2), At(0.7)).ok());
  ASSERT_TRUE(window.Report("router", Requests(1.5), At(0.8)).ok());
  WindowLoad load = window.Average(At(1.1));
  EXPECT_EQ(load.seconds, 1);
  EXPECT_EQ(load.request_millis_sum, 8'500);
  EXPECT_EQ(window.source_count(), 3u);
}

TEST(LoadWindowTest, StaleSourcesCountZeroAndAreForgotten) {
  LoadWindow window(60, 3);
  ASSERT_TRUE(window.Report("r1", Requests(10), At(0)).ok());
  ASSERT_TRUE(window.Report("r2", Requests(1), At(2)).ok());
  // r1 counts for seconds 0, 1, 2 and is gone from second 3; r2 for seconds 2, 3, 4.
  WindowLoad load = window.Average(At(7));
  EXPECT_EQ(load.seconds, 7);
  EXPECT_EQ(load.request_millis_sum, 3 * 10'000 + 3 * 1'000);
  EXPECT_EQ(window.source_count(), 0u);
  EXPECT_FALSE(window.has_live_source());
}

TEST(LoadWindowTest, ReportingAgainKeepsASourceFresh) {
  LoadWindow window(60, 3);
  for (int s = 0; s < 10; ++s) ASSERT_TRUE(window.Report("r1", Requests(2), At(s)).ok());
  WindowLoad load = window.Average(At(10.5));
  EXPECT_EQ(load.seconds, 10);
  EXPECT_DOUBLE_EQ(load.MeanRequests(), 2.0);
  EXPECT_EQ(window.source_count(), 1u);
  EXPECT_TRUE(window.has_live_source());
}

// Warm-up and "silence is not zero" count seconds in which some source's value counted.
TEST(LoadWindowTest, LiveSecondsCountCompletedSecondsWithASource) {
  LoadWindow window(60, 3);
  EXPECT_EQ(window.live_seconds(), 0);
  ASSERT_TRUE(window.Report("r1", Requests(0), At(0.5)).ok());  // a zero report is live
  window.Average(At(0.9));
  EXPECT_EQ(window.live_seconds(), 0);  // second 0 is still in progress
  window.Average(At(10));
  // r1 counts in seconds 0, 1, 2 and then nothing reports.
  EXPECT_EQ(window.live_seconds(), 3);
  ASSERT_TRUE(window.Report("r1", Requests(1), At(100.5)).ok());
  window.Average(At(102));
  EXPECT_EQ(window.live_seconds(), 5);
}

TEST(LoadWindowTest, LongSilenceEmptiesTheWindow) {
  LoadWindow window(10, 5);
  ASSERT_TRUE(window.Report("r1", Requests(100), At(0)).ok());
  WindowLoad load = window.Average(At(1'000'000));
  EXPECT_EQ(load.seconds, 10);
  EXPECT_EQ(load.request_millis_sum, 0);
  ASSERT_TRUE(window.Report("r1", Requests(1), At(1'000'000.5)).ok());
  EXPECT_EQ(window.Average(At(1'000'001.5)).request_millis_sum, 1'000);
}

TEST(LoadWindowTest, TimeGoingBackwardsCountsAsTheLatestSecond) {
  LoadWindow window(10, 10);
  ASSERT_TRUE(window.Report("r1", Requests(1), At(5)).ok());
  ASSERT_TRUE(window.Report("r1", Requests(3), At(2)).ok());  // a late clock: applies to second 5
  WindowLoad load = window.Average(At(6));
  EXPECT_EQ(load.seconds, 1);
  EXPECT_EQ(load.request_millis_sum, 3'000);
}

TEST(LoadWindowTest, TokensAreAveragedBesideRequests) {
  LoadWindow window(10, 10);
  ASSERT_TRUE(window.Report("r1", Requests(1), At(0)).ok());
  EXPECT_FALSE(window.Average(At(0)).has_tokens);
  ASSERT_TRUE(window.Report("r1", LoadSample{1000, 4000}, At(1)).ok());
  ASSERT_TRUE(window.Report("r2", LoadSample{1000, 2000}, At(1)).ok());
  WindowLoad load = window.Average(At(3));
  EXPECT_TRUE(load.has_tokens);
  EXPECT_EQ(load.seconds, 3);
  EXPECT_EQ(load.token_sum, 2 * 6000);
  EXPECT_DOUBLE_EQ(load.MeanTokens(), 4000.0);
}

TEST(LoadWindowTest, RejectsNegativeAndAbsurdValuesWithoutRecordingThem) {
  LoadWindow window(10, 10);
  ASSERT_TRUE(window.Report("r1", Requests(2), At(0)).ok());
  absl::Status s = window.Report("r1", LoadSample{-1, {}}, At(0));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "in_flight_requests must be between 0 and 1000000, got -0.001");
  s = window.Report("r1", LoadSample{kMaxReportRequestMillis + 1, {}}, At(0));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  s = window.Report("r2", LoadSample{0, -5}, At(0));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "in_flight_tokens must be between 0 and 10000000000, got -5");
  s = window.Report("r2", LoadSample{0, kMaxReportTokens + 1}, At(0));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  const WindowLoad load = window.Average(At(1));
  EXPECT_EQ(load.request_millis_sum, 2'000);
  EXPECT_FALSE(load.has_tokens);
  EXPECT_EQ(window.source_count(), 1u);
}

TEST(LoadWindowTest, CapsTheNumberOfSources) {
  LoadWindow window(10, 10, /*max_sources=*/3);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(window.Report(absl::StrCat("r", i), Requests(1), At(0)).ok());
  }
  EXPECT_EQ(window.Report("r3", Requests(1), At(0)).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(window.Report("r0", Requests(5), At(0)).ok());  // known sources still report
  EXPECT_EQ(window.Average(At(1)).request_millis_sum, 7'000);
  // Once sources go stale there is room again.
  EXPECT_TRUE(window.Report("r3", Requests(1), At(20)).ok());
}

TEST(LoadWindowTest, ShrinkingKeepsTheMostRecentSeconds) {
  LoadWindow window(10, 100);
  for (int s = 0; s < 10; ++s) ASSERT_TRUE(window.Report("r1", Requests(s), At(s)).ok());
  window.Resize(3);
  WindowLoad load = window.Average(At(10));
  EXPECT_EQ(load.seconds, 3);
  EXPECT_EQ(load.request_millis_sum, (7 + 8 + 9) * 1000);
}

TEST(LoadWindowTest, GrowingAveragesOverTheHeldSecondsUntilTheWindowFills) {
  LoadWindow window(3, 100);
  for (int s = 0; s < 10; ++s) ASSERT_TRUE(window.Report("r1", Requests(s), At(s)).ok());
  ASSERT_TRUE(window.Report("r1", Requests(9), At(10)).ok());
  window.Resize(10);
  EXPECT_EQ(window.window_seconds(), 10);
  WindowLoad load = window.Average(At(10));
  EXPECT_EQ(load.seconds, 3);
  EXPECT_EQ(load.request_millis_sum, (7 + 8 + 9) * 1000);
  load = window.Average(At(12));  // 9 carried into seconds 10 and 11
  EXPECT_EQ(load.seconds, 5);
  EXPECT_EQ(load.request_millis_sum, (7 + 8 + 9 + 9 + 9) * 1000);
}

// The definition of DESIGN §6, computed the slow, obvious way from every report.
class BruteForceWindow {
 public:
  BruteForceWindow(int64_t window, int64_t staleness) : window_(window), staleness_(staleness) {}

  void Report(const std::string& source, int64_t second, const LoadSample& sample) {
    if (!first_second_) first_second_ = second;
    history_[source].push_back({second, sample});
    has_tokens_ |= sample.tokens.has_value();
  }

  // The mean over the completed seconds before `now_second`.
  WindowLoad Average(int64_t now_second) const {
    WindowLoad load;
    if (!first_second_) return load;
    load.seconds = std::min(window_, now_second - *first_second_);
    load.has_tokens = has_tokens_;
    for (int64_t s = now_second - load.seconds; s < now_second; ++s) {
      for (const auto& [source, reports] : history_) {
        const Entry* latest = nullptr;
        for (const Entry& e : reports) {
          if (e.second <= s) latest = &e;  // later entries win, also within a second
        }
        if (latest == nullptr || s - latest->second >= staleness_) continue;
        load.request_millis_sum += latest->sample.request_millis;
        load.token_sum += latest->sample.tokens.value_or(0);
      }
    }
    return load;
  }

 private:
  struct Entry {
    int64_t second;
    LoadSample sample;
  };
  int64_t window_;
  int64_t staleness_;
  std::optional<int64_t> first_second_;
  bool has_tokens_ = false;
  std::map<std::string, std::vector<Entry>> history_;
};

struct RandomCase {
  uint64_t seed;
  int32_t window;
  int32_t staleness;
};

class LoadWindowRandomTest : public ::testing::TestWithParam<RandomCase> {};

TEST_P(LoadWindowRandomTest, MatchesTheBruteForceDefinition) {
  const RandomCase& c = GetParam();
  std::mt19937_64 rng(c.seed);
  auto uniform = [&rng](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  LoadWindow window(c.window, c.staleness);
  BruteForceWindow reference(c.window, c.staleness);
  absl::Time now = At(0);
  int64_t latest_second = absl::ToUnixSeconds(now);
  int checks = 0;
  for (int step = 0; step < 600; ++step) {
    // Mostly sub-second steps, sometimes a gap longer than staleness or the window.
    const int64_t roll = uniform(0, 99);
    const int64_t gap_ms = roll < 80 ? uniform(0, 900) : roll < 97 ? uniform(1000, 8000)
                                                                   : uniform(10'000, 200'000);
    now += absl::Milliseconds(gap_ms);
    // Now and then a reporter's clock lags: its report counts in the latest second seen.
    const absl::Time report_time =
        uniform(0, 19) == 0 ? now - absl::Milliseconds(uniform(0, 3000)) : now;
    latest_second = std::max(latest_second, absl::ToUnixSeconds(report_time));
    const int64_t second = latest_second;
    if (uniform(0, 3) > 0) {
      const std::string source = absl::StrCat("replica-", uniform(0, 5));
      LoadSample sample{uniform(0, 50'000), std::nullopt};
      if (uniform(0, 4) == 0) sample.tokens = uniform(0, 100'000);
      ASSERT_TRUE(window.Report(source, sample, report_time).ok());
      reference.Report(source, second, sample);
    } else {
      const WindowLoad got = window.Average(report_time);
      const WindowLoad want = reference.Average(second);
      ASSERT_EQ(got.seconds, want.seconds) << "step " << step;
      ASSERT_EQ(got.request_millis_sum, want.request_millis_sum) << "step " << step;
      ASSERT_EQ(got.token_sum, want.token_sum) << "step " << step;
      ASSERT_EQ(got.has_tokens, want.has_tokens) << "step " << step;
      ++checks;
    }
  }
  EXPECT_GT(checks, 100);
}

INSTANTIATE_TEST_SUITE_P(Seeds, LoadWindowRandomTest,
                         ::testing::Values(RandomCase{1, 10, 10}, RandomCase{2, 60, 10},
                                           RandomCase{3, 10, 3}, RandomCase{4, 30, 45},
                                           RandomCase{5, 240, 10}, RandomCase{6, 11, 1},
                                           RandomCase{7, 60, 10}, RandomCase{8, 120, 20}),
                         [](const ::testing::TestParamInfo<RandomCase>& info) {
                           return absl::StrCat("seed", info.param.seed, "_window",
                                               info.param.window, "_staleness",
                                               info.param.staleness);
                         });

// Windows longer than kExactWindowSeconds keep bucket totals. Over hours of bursty load
// from three replicas, every average stays within 1 % of the exact one, and the ring stays
// small: a 3600 s window holds 241 buckets of 15 s.
TEST(LoadWindowTest, LongWindowsStayWithinOnePercentOfExact) {
  for (const int32_t window_seconds : {241, 1800, 3600}) {
    LoadWindow window(window_seconds, 10);
    std::mt19937_64 rng(window_seconds);
    std::vector<int64_t> exact;  // per-second totals, as reported
    int64_t level = 5000;
    double worst = 0;
    int checks = 0;
    for (int second = 0; second < 3 * 3600; ++second) {
      // A random walk with bursts that double the load for a second: what a fleet with
      // some traffic sees over a few hours.
      level = std::clamp<int64_t>(level + static_cast<int64_t>(rng() % 2001) - 1000, 1'500,
                                  60'000);
      const int64_t burst = rng() % 50 == 0 ? level : 0;
      int64_t total = 0;
      for (int r = 0; r < 3; ++r) {
        const int64_t value = (level + burst) / 3 + static_cast<int64_t>(rng() % 500);
        ASSERT_TRUE(window.Report(absl::StrCat("replica-", r), LoadSample{value, {}},
                                  At(second + 0.5)).ok());
        total += value;
      }
      exact.push_back(total);
      const WindowLoad got = window.Average(At(second + 1.2));
      const int64_t n = std::min<int64_t>(window_seconds, second + 1);
      ASSERT_EQ(got.seconds, n);
      int64_t want = 0;
      for (int64_t s = second + 1 - n; s <= second; ++s) want += exact[s];
      if (want > 0) {
        worst = std::max(worst, std::abs(static_cast<double>(got.request_millis_sum - want)) /
                                    static_cast<double>(want));
        ++checks;
      }
    }
    EXPECT_LT(worst, 0.01) << "window " << window_seconds;
    EXPECT_GT(window.bucket_seconds(), 1);
    EXPECT_LT(window.MemoryBytes(), 8 * 1024u) << "window " << window_seconds;
    std::printf("window %d s: buckets of %d s, worst error %.4f %% over %d averages, %zu bytes\n",
                window_seconds, window.bucket_seconds(), worst * 100, checks,
                window.MemoryBytes());
  }
}

TEST(LoadWindowTest, WindowsUpToTheExactLimitKeepOneTotalPerSecond) {
  EXPECT_EQ(LoadWindow(kExactWindowSeconds, 10).bucket_seconds(), 1);
  EXPECT_EQ(LoadWindow(kExactWindowSeconds + 1, 10).bucket_seconds(), 2);
  EXPECT_EQ(LoadWindow(3600, 10).bucket_seconds(), 15);
}

}  // namespace
}  // namespace chainscale
