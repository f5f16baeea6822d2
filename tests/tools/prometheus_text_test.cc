// The Prometheus text format parser: what it reads from real exporters, and every kind of
// malformed line answered INVALID_ARGUMENT naming the line, never a crash (a seeded
// mutation loop at the end, bounded in count).
#include "tools/reporter/prometheus_text.h"

#include <cmath>
#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chainscale {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

using Labels = std::vector<std::pair<std::string, std::string>>;

// What vLLM's /metrics looks like (a part of it), as prometheus_client writes it.
constexpr char kVllm[] =
    "# HELP vllm:num_requests_running Number of requests currently running on GPU.\n"
    "# TYPE vllm:num_requests_running gauge\n"
    "vllm:num_requests_running{model_name=\"meta-llama/Llama-3.1-8B\"} 3.0\n"
    "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
    "# TYPE vllm:num_requests_waiting gauge\n"
    "vllm:num_requests_waiting{model_name=\"meta-llama/Llama-3.1-8B\"} 5.0\n"
    "# HELP vllm:e2e_request_latency_seconds Histogram of end to end request latency.\n"
    "# TYPE vllm:e2e_request_latency_seconds histogram\n"
    "vllm:e2e_request_latency_seconds_bucket{le=\"0.3\",model_name=\"m\"} 0.0\n"
    "vllm:e2e_request_latency_seconds_bucket{le=\"+Inf\",model_name=\"m\"} 7.0\n"
    "vllm:e2e_request_latency_seconds_count{model_name=\"m\"} 7.0\n"
    "vllm:e2e_request_latency_seconds_sum{model_name=\"m\"} 12.5\n";

absl::StatusOr<std::vector<PrometheusSample>> Parse(absl::string_view text) {
  return ParsePrometheusText(text);
}

// The error of `text`; fails the test when it parses.
std::string ErrorOf(absl::string_view text) {
  absl::StatusOr<std::vector<PrometheusSample>> parsed = Parse(text);
  EXPECT_FALSE(parsed.ok()) << "parsed: " << text;
  if (parsed.ok()) return "";
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << parsed.status();
  return std::string(parsed.status().message());
}

TEST(PrometheusTextTest, ReadsAVllmPage) {
  absl::StatusOr<std::vector<PrometheusSample>> samples = Parse(kVllm);
  ASSERT_TRUE(samples.ok()) << samples.status();
  ASSERT_EQ(samples->size(), 6u);
  const PrometheusSample& running = (*samples)[0];
  EXPECT_EQ(running.name, "vllm:num_requests_running");
  EXPECT_THAT(running.labels, ElementsAre(Pair("model_name", "meta-llama/Llama-3.1-8B")));
  EXPECT_EQ(running.value, 3.0);
  EXPECT_EQ(running.line, 3);
  EXPECT_FALSE(running.timestamp_ms.has_value());
  EXPECT_EQ((*samples)[1].value, 5.0);
  EXPECT_EQ((*samples)[3].name, "vllm:e2e_request_latency_seconds_bucket");
  EXPECT_THAT((*samples)[3].labels, ElementsAre(Pair("le", "+Inf"), Pair("model_name", "m")));
  EXPECT_EQ((*samples)[5].value, 12.5);
}

TEST(PrometheusTextTest, EmptyTextHasNoSamples) {
  absl::StatusOr<std::vector<PrometheusSample>> samples = Parse("");
  ASSERT_TRUE(samples.ok());
  EXPECT_TRUE(samples->empty());
  samples = Parse("\n\n# just a comment\n   \n");
  ASSERT_TRUE(samples.ok()) << samples.status();
  EXPECT_TRUE(samples->empty());
}

TEST(PrometheusTextTest, UnescapesLabelValues) {
  absl::StatusOr<std::vector<PrometheusSample>> samples =
      Parse("m{a=\"back\\\\slash\",b=\"quote\\\"d\",c=\"new\\nline\",d=\"\",e=\"ünï\"} 1\n");
  ASSERT_TRUE(samples.ok()) << samples.status();
  EXPECT_THAT((*samples)[0].labels,
              ElementsAre(Pair("a", "back\\slash"), Pair("b", "quote\"d"), Pair("c", "new\nline"),
                          Pair("d", ""), Pair("e", "ünï")));
}

TEST(PrometheusTextTest, ReadsSpecialValuesAndTimestamps) {
  absl::StatusOr<std::vector<PrometheusSample>> samples =
      Parse("a NaN\nb +Inf\nc -Inf\nd inf\ne 1e3 1700000000000\nf -2.5E-1 -5\n");
  ASSERT_TRUE(samples.ok()) << samples.status();
  ASSERT_EQ(samples->size(), 6u);
  EXPECT_TRUE(std::isnan((*samples)[0].value));
  EXPECT_EQ((*samples)[1].value, INFINITY);
  EXPECT_EQ((*samples)[2].value, -INFINITY);
  EXPECT_EQ((*samples)[3].value, INFINITY);
  EXPECT_EQ((*samples)[4].value, 1000);
  EXPECT_EQ((*samples)[4].timestamp_ms, 1700000000000);
  EXPECT_EQ((*samples)[5].value, -0.25);
  EXPECT_EQ((*samples)[5].timestamp_ms, -5);
}

TEST(PrometheusTextTest, AcceptsBlanksTabsTrailingCommaAndNoFinalNewline) {
  absl::StatusOr<std::vector<PrometheusSample>> samples =
      Parse("  m { a = \"1\" , b=\"2\", }\t 4\t 10 \nn{} 5\n\tk 6");
  ASSERT_TRUE(samples.ok()) << samples.status();
  ASSERT_EQ(samples->size(), 3u);
  EXPECT_THAT((*samples)[0].labels, ElementsAre(Pair("a", "1"), Pair("b", "2")));
  EXPECT_EQ((*samples)[0].timestamp_ms, 10);
  EXPECT_TRUE((*samples)[1].labels.empty());
  EXPECT_EQ((*samples)[2].value, 6);
}

TEST(PrometheusTextTest, HelpTextMayHoldAnything) {
  absl::StatusOr<std::vector<PrometheusSample>> samples =
      Parse("# HELP m text with \\\\ and \\n and \"quotes\" {}\n# HELP n\n# TYPE m gauge\nm 1\n");
  ASSERT_TRUE(samples.ok()) << samples.status();
  EXPECT_EQ(samples->size(), 1u);
}

TEST(PrometheusTextTest, ErrorsNameTheLineAndTheProblem) {
  EXPECT_THAT(ErrorOf("m 1\nm{a=\"x\" 2\n"), HasSubstr("line 2"));
  EXPECT_THAT(ErrorOf("1m 1\n"), HasSubstr("line 1: invalid metric name"));
  EXPECT_THAT(ErrorOf("m\n"), HasSubstr("line 1: no value"));
  EXPECT_THAT(ErrorOf("m{} \n"), HasSubstr("line 1: no value"));
  EXPECT_THAT(ErrorOf("m 1.2.3\n"), HasSubstr("line 1: invalid value \"1.2.3\""));
  EXPECT_THAT(ErrorOf("m 0x10\n"), HasSubstr("invalid value"));
  EXPECT_THAT(ErrorOf("m 1e999\n"), HasSubstr("out of range"));
  EXPECT_THAT(ErrorOf("m 1 2.5\n"), HasSubstr("line 1: invalid timestamp \"2.5\""));
  EXPECT_THAT(ErrorOf("m 1 2 3\n"), HasSubstr("line 1: unexpected \"3\""));
  EXPECT_THAT(ErrorOf("m 1\r\n"), HasSubstr("line 1"));
  EXPECT_THAT(ErrorOf("m{1a=\"x\"} 1\n"), HasSubstr("invalid label name"));
  EXPECT_THAT(ErrorOf("m{a=x} 1\n"), HasSubstr("line 1: label a: value must be quoted"));
  EXPECT_THAT(ErrorOf("m{a=\"x\\t\"} 1\n"), HasSubstr("invalid escape \\t"));
  EXPECT_THAT(ErrorOf("m{a=\"x} 1\n"), HasSubstr("unterminated"));
  EXPECT_THAT(ErrorOf("m{a=\"\xff\"} 1\n"), HasSubstr("UTF-8"));
  EXPECT_THAT(ErrorOf("m{a=\"1\",a=\"2\"} 1\n"), HasSubstr("label a twice"));
  EXPECT_THAT(ErrorOf("m{a=\"1\" b=\"2\"} 1\n"), HasSubstr("expected ',' or '}'"));
  EXPECT_THAT(ErrorOf("m{a} 1\n"), HasSubstr("expected '='"));
  EXPECT_THAT(ErrorOf("m{,} 1\n"), HasSubstr("invalid label name"));
}

TEST(PrometheusTextTest, AValueMayFollowTheBraceDirectly) {
  absl::StatusOr<std::vector<PrometheusSample>> samples = Parse("m{a=\"1\"}7\n");
  ASSERT_TRUE(samples.ok()) << samples.status();
  EXPECT_EQ((*samples)[0].value, 7);
}

TEST(PrometheusTextTest, HelpAndTypeLinesAreChecked) {
  EXPECT_THAT(ErrorOf("# TYPE m gauge\n# TYPE m gauge\nm 1\n"),
              HasSubstr("line 2: second TYPE for m"));
  EXPECT_THAT(ErrorOf("# HELP m a\n# HELP m b\n"), HasSubstr("line 2: second HELP for m"));
  EXPECT_THAT(ErrorOf("m 1\n# TYPE m gauge\n"), HasSubstr("line 2: TYPE for m after its samples"));
  EXPECT_THAT(ErrorOf("h_bucket{le=\"1\"} 1\n# TYPE h histogram\n"),
              HasSubstr("TYPE for h after its samples"));
  EXPECT_THAT(ErrorOf("# TYPE m gauges\n"), HasSubstr("line 1: unknown type \"gauges\""));
  EXPECT_THAT(ErrorOf("# TYPE m\n"), HasSubstr("line 1: unknown type \"\""));
  EXPECT_THAT(ErrorOf("# TYPE 1m gauge\n"), HasSubstr("invalid metric name"));
  EXPECT_THAT(ErrorOf("# HELP\n"), HasSubstr("line 1: invalid metric name"));
  EXPECT_THAT(ErrorOf("# HELP m bad \\t escape\n"), HasSubstr("invalid escape"));
  // Other comments are free text.
  EXPECT_TRUE(Parse("# TYPEWRITER\n#\n# help m x\n").ok());
  // A gauge named like a histogram's part is its own family.
  EXPECT_TRUE(Parse("x_count 1\n# TYPE x gauge\n").ok());
}

TEST(PrometheusTextTest, OneSamplePerSeries) {
  EXPECT_THAT(ErrorOf("m{a=\"1\",b=\"2\"} 1\nn 0\nm{b=\"2\",a=\"1\"} 2\n"),
              HasSubstr("line 3: second sample of m{a=\"1\",b=\"2\"} (first on line 1)"));
  EXPECT_TRUE(Parse("m{a=\"1\"} 1\nm{a=\"2\"} 2\nm 3\n").ok());
}

TEST(PrometheusTextTest, LongLinesAreQuotedShort) {
  const std::string name(5000, 'x');
  const std::string message = ErrorOf(name + " 1 2 " + std::string(5000, 'y') + "\n");
  EXPECT_THAT(message, HasSubstr("line 1"));
  EXPECT_LT(message.size(), 300u);
}

TEST(PrometheusTextTest, NamesAreChecked) {
  EXPECT_TRUE(IsMetricName("vllm:num_requests_running"));
  EXPECT_TRUE(IsMetricName("_x:y_9"));
  EXPECT_FALSE(IsMetricName(""));
  EXPECT_FALSE(IsMetricName("9x"));
  EXPECT_FALSE(IsMetricName("a-b"));
  EXPECT_TRUE(IsLabelName("model_name"));
  EXPECT_FALSE(IsLabelName("model:name"));
  EXPECT_FALSE(IsLabelName(""));
}

// Mutated pages (bytes flipped, runs deleted and duplicated, format tokens inserted):
// every outcome is a list of samples or INVALID_ARGUMENT that names a line; no crash,
// under ASan/UBSan in the sanitizer build. The fuzz target goes further, for longer.
TEST(PrometheusTextTest, MutatedPagesParseOrNameALine) {
  const char* const tokens[] = {"{",     "}",  "\"",   "\\",      "=",       ",",   " ",
                                "\t",    "\n", "#",    "# TYPE ", "# HELP ", "NaN", "+Inf",
                                "1e999", "-",  "\xff", "\\n",     "\\\""};
  std::mt19937_64 rng(20240611);
  auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  int parsed = 0;
  int rejected = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string page = kVllm;
    for (int round = 0, rounds = 1 + static_cast<int>(pick(4)); round < rounds; ++round) {
      switch (pick(4)) {
        case 0:
          page[pick(page.size())] = static_cast<char>(pick(256));
          break;
        case 1:
          page.erase(pick(page.size()), 1 + pick(16));
          break;
        case 2:
          page.insert(pick(page.size() + 1), tokens[pick(std::size(tokens))]);
          break;
        case 3: {
          const size_t at = pick(page.size());
          page.insert(pick(page.size() + 1), page.substr(at, 1 + pick(40)));
          break;
        }
      }
      if (page.empty()) page = "m 1\n";
    }
    absl::StatusOr<std::vector<PrometheusSample>> samples = Parse(page);
    if (samples.ok()) {
      ++parsed;
      continue;
    }
    ++rejected;
    ASSERT_EQ(samples.status().code(), absl::StatusCode::kInvalidArgument) << page;
    ASSERT_THAT(samples.status().message(), HasSubstr("line ")) << page;
  }
  std::printf("mutated pages: %d parsed, %d rejected with a line named\n", parsed, rejected);
  EXPECT_GT(parsed, 0);
  EXPECT_GT(rejected, 0);
}

}  // namespace
}  // namespace chainscale
