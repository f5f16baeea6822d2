// Token buckets by name, with a fake clock: refill, waits, and the bound on buckets.
#include "common/rate_limit.h"

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"

namespace chainscale {
namespace {

TEST(RateLimiterTest, BurstThenRefillAtTheRate) {
  testing::FakeClock clock;
  RateLimiter limiter({/*per_second=*/2, /*burst=*/3, /*max_buckets=*/10}, clock);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(limiter.Take("a"), absl::ZeroDuration()) << i;
  EXPECT_EQ(limiter.Wait("a"), absl::Milliseconds(500));
  EXPECT_EQ(limiter.Take("a"), absl::Milliseconds(500));
  EXPECT_EQ(limiter.Take("b"), absl::ZeroDuration()) << "each name has its own bucket";
  clock.Advance(absl::Milliseconds(250));
  EXPECT_EQ(limiter.Take("a"), absl::Milliseconds(250));
  clock.Advance(absl::Milliseconds(250));
  EXPECT_EQ(limiter.Take("a"), absl::ZeroDuration());
  clock.Advance(absl::Seconds(100));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(limiter.Take("a"), absl::ZeroDuration());
  EXPECT_GT(limiter.Take("a"), absl::ZeroDuration()) << "refill stops at the burst";
}

TEST(RateLimiterTest, BucketsAreBoundedAndAFloodOfNamesSharesOne) {
  testing::FakeClock clock;
  RateLimiter limiter({/*per_second=*/1, /*burst=*/2, /*max_buckets=*/100}, clock);
  // 100 000 names, each spending its burst: the map never passes its bound, and the
  // names past it share the overflow bucket, which is soon empty.
  int refused = 0;
  for (int i = 0; i < 100'000; ++i) {
    const std::string name = absl::StrCat("10.0.", i / 256, ".", i % 256);
    limiter.Take(name);
    if (limiter.Take(name) > absl::ZeroDuration() || limiter.Take(name) > absl::ZeroDuration()) {
      ++refused;
    }
    ASSERT_LE(limiter.size(), 101u) << i;
  }
  EXPECT_EQ(refused, 100'000);
  EXPECT_GT(limiter.Wait("203.0.113.9"), absl::ZeroDuration())
      << "a new name while the map is full waits with the overflow bucket";
  // Once buckets have refilled they are dropped to make room for new names.
  clock.Advance(absl::Seconds(10));
  EXPECT_EQ(limiter.Take("203.0.113.9"), absl::ZeroDuration());
  EXPECT_LE(limiter.size(), 2u);
}

}  // namespace
}  // namespace chainscale
