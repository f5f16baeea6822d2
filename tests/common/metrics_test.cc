// Prometheus text rendering.
#include "common/metrics.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chainscale {
namespace {

using ::testing::HasSubstr;

TEST(MetricsTest, RendersFamiliesWithHelpTypeAndEscapedLabels) {
  Metrics metrics;
  metrics.Describe("chainscale_things_total", "counter", "Things seen.");
  metrics.Add("chainscale_things_total", {{"chain", "a\"b"}, {"env", "prod"}}, 2);
  metrics.Add("chainscale_things_total", {{"chain", "a\"b"}, {"env", "prod"}});
  metrics.Set("chainscale_level", {}, 7.5);
  metrics.AddCollector([](std::string* out) { out->append("chainscale_dynamic 1\n"); });
  const std::string text = metrics.Render();
  EXPECT_THAT(text, HasSubstr("# HELP chainscale_things_total Things seen.\n"
                              "# TYPE chainscale_things_total counter\n"
                              "chainscale_things_total{chain=\"a\\\"b\",env=\"prod\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("chainscale_level 7.5\n"));
  EXPECT_THAT(text, HasSubstr("chainscale_dynamic 1\n"));
}

TEST(MetricsTest, RpcsAreCountedAndTimed) {
  Metrics metrics;
  metrics.RecordRpc("GetChain", "OK", absl::Milliseconds(250));
  metrics.RecordRpc("GetChain", "OK", absl::Milliseconds(250));
  metrics.RecordRpc("GetChain", "NOT_FOUND", absl::Milliseconds(1));
  const std::string text = metrics.Render();
  EXPECT_THAT(text, HasSubstr("chainscale_rpc_requests_total{method=\"GetChain\",code=\"OK\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("chainscale_rpc_duration_seconds_count{method=\"GetChain\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("chainscale_rpc_duration_seconds_sum{method=\"GetChain\"} 0.501\n"));
}

}  // namespace
}  // namespace chainscale
