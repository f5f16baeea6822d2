// The trace parser and the service-time model that turns a trace into in-flight load.
#include "tools/simulator/trace.h"

#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chainscale {
namespace {

using ::testing::HasSubstr;

TEST(ParseTraceTest, ReadsRowsWithFractionalTimestamps) {
  std::istringstream in(
      "TIMESTAMP,ContextTokens,GeneratedTokens\n"
      "2023-11-16 18:15:46.6805900,374,44\n"
      "2023-11-16 18:15:50.9951690,396,109\n");
  absl::StatusOr<std::vector<TraceRequest>> trace = ParseTrace(in);
  ASSERT_TRUE(trace.ok()) << trace.status();
  ASSERT_EQ(trace->size(), 2u);
  EXPECT_EQ((*trace)[0].context_tokens, 374);
  EXPECT_EQ((*trace)[0].generated_tokens, 44);
  EXPECT_EQ((*trace)[1].arrival - (*trace)[0].arrival, absl::Nanoseconds(4'314'579'000));
}

TEST(ParseTraceTest, NamesTheLineOfABadRow) {
  std::istringstream in(
      "TIMESTAMP,ContextTokens,GeneratedTokens\n"
      "2023-11-16 18:15:46.68,374,44\n"
      "2023-11-16 18:15:47.00,-3,44\n");
  absl::StatusOr<std::vector<TraceRequest>> trace = ParseTrace(in);
  EXPECT_EQ(trace.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(trace.status().message(), HasSubstr("line 3"));
}

TEST(ParseTraceTest, RejectsOutOfOrderArrivals) {
  std::istringstream in(
      "TIMESTAMP,ContextTokens,GeneratedTokens\n"
      "2023-11-16 18:15:47.00,1,1\n"
      "2023-11-16 18:15:46.00,1,1\n");
  EXPECT_THAT(ParseTrace(in).status().message(), HasSubstr("in order"));
}

TEST(SampleInFlightTest, CountsRequestsBetweenArrivalAndCompletion) {
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  ServiceTimeModel model;
  model.overhead = absl::Seconds(1);
  model.per_context_token = absl::Milliseconds(10);
  model.per_generated_token = absl::Seconds(1);
  // In flight [0.5, 0.5 + 1 + 1 + 2) = [0.5, 4.5); second: [1.2, 1.2 + 1 + 0 + 1) = [1.2, 3.2).
  const std::vector<TraceRequest> trace = {{t0 + absl::Milliseconds(500), 100, 2},
                                           {t0 + absl::Milliseconds(1200), 0, 1}};
  const std::vector<InFlight> samples = SampleInFlight(trace, model, t0, absl::Seconds(1));
  ASSERT_EQ(samples.size(), 5u);  // t0 .. t0+4
  const int64_t want_requests[] = {0, 1, 2, 2, 1};
  const int64_t want_tokens[] = {0, 102, 103, 103, 102};
  for (size_t i = 0; i < samples.size(); ++i) {
    EXPECT_EQ(samples[i].requests, want_requests[i]) << "second " << i;
    EXPECT_EQ(samples[i].tokens, want_tokens[i]) << "second " << i;
  }
}

}  // namespace
}  // namespace chainscale
