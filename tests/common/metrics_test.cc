// Prometheus text rendering.
#include "common/metrics.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/wait.h"

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

// A label value that comes from a client (a 3 MB agent id, say) must not make /metrics
// that large: long values are cut, and two different long values stay two series.
TEST(MetricsTest, LongLabelValuesAreCutButStayDistinct) {
  const std::string a(3 << 20, 'a');
  std::string b = a;
  b.back() = 'b';
  const std::string rendered_a = RenderLabels({{"agent", a}});
  const std::string rendered_b = RenderLabels({{"agent", b}});
  EXPECT_LE(rendered_a.size(), 200u);
  EXPECT_NE(rendered_a, rendered_b);
  EXPECT_EQ(rendered_a.rfind("{agent=\"aaaaaaaa", 0), 0u) << rendered_a;
  EXPECT_EQ(RenderLabels({{"agent", "agent-1"}}), "{agent=\"agent-1\"}");
  // Cutting never splits an escape or a UTF-8 sequence.
  std::string quotes(1000, '"');
  const std::string rendered = RenderLabels({{"agent", quotes}});
  EXPECT_EQ(rendered.substr(rendered.size() - 2), "\"}");
  EXPECT_EQ(rendered.find("\\\"\"}"), std::string::npos) << rendered;
}

TEST(MetricsTest, ParallelScrapesShareOneRender) {
  Metrics metrics;
  std::atomic<int> renders{0};
  absl::Notification release;
  metrics.AddCollector([&](std::string* out) {
    out->append("chainscale_render " + std::to_string(++renders) + "\n");
    release.WaitForNotification();
  });
  std::vector<std::string> texts(4);
  std::vector<std::thread> scrapes;
  scrapes.emplace_back([&] { texts[0] = metrics.Render(); });
  ASSERT_TRUE(testing::WaitFor([&] { return renders.load() == 1; }));
  for (int i = 1; i < 4; ++i) scrapes.emplace_back([&, i] { texts[i] = metrics.Render(); });
  ASSERT_TRUE(testing::WaitFor([&] { return metrics.ScrapesWaiting() == 3; }));
  release.Notify();
  for (std::thread& t : scrapes) t.join();
  EXPECT_EQ(renders.load(), 1);
  for (const std::string& text : texts) EXPECT_EQ(text, "chainscale_render 1\n");
  // A scrape after the shared one renders afresh.
  EXPECT_EQ(metrics.Render(), "chainscale_render 2\n");
}

}  // namespace
}  // namespace chainscale
