// Metric sums and presets: parsing, label matching, the presets' metric names against
// pages shaped like each server's, and the errors that name the missing metric.
#include "tools/reporter/load_query.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chainscale {
namespace {

using ::testing::HasSubstr;

std::vector<PrometheusSample> Samples(absl::string_view page) {
  absl::StatusOr<std::vector<PrometheusSample>> samples = ParsePrometheusText(page);
  EXPECT_TRUE(samples.ok()) << samples.status();
  return samples.ok() ? *samples : std::vector<PrometheusSample>{};
}

MeasuredLoad MeasureOk(const LoadQuery& query, absl::string_view page) {
  absl::StatusOr<MeasuredLoad> load = query.Measure(Samples(page));
  EXPECT_TRUE(load.ok()) << load.status();
  return load.ok() ? *load : MeasuredLoad{};
}

LoadQuery Query(absl::string_view preset, absl::string_view requests = "",
                absl::string_view tokens = "") {
  absl::StatusOr<LoadQuery> query = LoadQuery::Make(preset, requests, tokens);
  EXPECT_TRUE(query.ok()) << query.status();
  return *std::move(query);
}

TEST(MetricSumTest, ParsesTermsAndMatchers) {
  absl::StatusOr<MetricSum> sum = MetricSum::Parse(
      "vllm:num_requests_running{model_name=\"m\"} +vllm:num_requests_waiting{ a != \"x\\\"y\" , "
      "}");
  ASSERT_TRUE(sum.ok()) << sum.status();
  ASSERT_EQ(sum->terms().size(), 2u);
  EXPECT_EQ(sum->terms()[0].name, "vllm:num_requests_running");
  ASSERT_EQ(sum->terms()[0].matchers.size(), 1u);
  EXPECT_EQ(sum->terms()[0].matchers[0].label, "model_name");
  EXPECT_TRUE(sum->terms()[0].matchers[0].equal);
  EXPECT_FALSE(sum->terms()[1].matchers[0].equal);
  EXPECT_EQ(sum->terms()[1].matchers[0].value, "x\"y");
  EXPECT_EQ(sum->Text(),
            "vllm:num_requests_running{model_name=\"m\"} + "
            "vllm:num_requests_waiting{a!=\"x\\\"y\"}");
}

TEST(MetricSumTest, MalformedSumsSayWhere) {
  for (const char* bad : {"", "  ", "a +", "+ a", "a b", "a{", "a{b}", "a{b=c}", "a{b=~\"c\"}",
                          "a{b=\"c\"", "1a", "a + + b", "a{b=\"\\q\"}", "a{b=\"1\",b=\"2\"}"}) {
    absl::StatusOr<MetricSum> sum = MetricSum::Parse(bad);
    EXPECT_EQ(sum.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_THAT(MetricSum::Parse("a b").status().message(), HasSubstr("at \"b\""));
  EXPECT_THAT(MetricSum::Parse("").status().message(), HasSubstr("empty"));
}

TEST(MetricSumTest, SumsEveryMatchingSample) {
  const std::vector<PrometheusSample> samples = Samples(
      "r{model_name=\"a\",dp=\"0\"} 1\nr{model_name=\"a\",dp=\"1\"} 2\nr{model_name=\"b\"} 4\n"
      "w 8\nw{x=\"\"} 16\n");
  auto value = [&](absl::string_view expression) {
    absl::StatusOr<MetricSum> sum = MetricSum::Parse(expression);
    EXPECT_TRUE(sum.ok()) << sum.status();
    absl::StatusOr<double> v = sum->Evaluate(samples);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.value_or(-1);
  };
  EXPECT_EQ(value("r"), 7);
  EXPECT_EQ(value("r{model_name=\"a\"}"), 3);
  EXPECT_EQ(value("r{model_name=\"a\",dp=\"1\"}"), 2);
  EXPECT_EQ(value("r{model_name!=\"a\"}"), 4);
  EXPECT_EQ(value("r + w"), 31);
  // A label a sample lacks matches as "".
  EXPECT_EQ(value("w{x=\"\"}"), 24);
  EXPECT_EQ(value("r{dp=\"\"}"), 4);
}

TEST(MetricSumTest, AMissingTermIsNotFoundNamingIt) {
  const std::vector<PrometheusSample> samples = Samples("r{model_name=\"a\"} 1\n");
  absl::StatusOr<double> v = MetricSum::Parse("r + w")->Evaluate(samples);
  EXPECT_EQ(v.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(v.status().message(), HasSubstr("no sample of w"));
  v = MetricSum::Parse("r{model_name=\"b\"}")->Evaluate(samples);
  EXPECT_EQ(v.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(v.status().message(), HasSubstr("r{model_name=\"b\"}"));
  EXPECT_THAT(v.status().message(), HasSubstr("1 sample of r, none with those labels"));
}

TEST(LoadQueryTest, VllmPresetAddsRunningAndWaiting) {
  const LoadQuery query = Query("vllm");
  EXPECT_EQ(query.requests().Text(), "vllm:num_requests_running + vllm:num_requests_waiting");
  EXPECT_FALSE(query.tokens().has_value());
  const MeasuredLoad load = MeasureOk(query,
                                      "# TYPE vllm:num_requests_running gauge\n"
                                      "vllm:num_requests_running{model_name=\"m\"} 3.0\n"
                                      "# TYPE vllm:num_requests_waiting gauge\n"
                                      "vllm:num_requests_waiting{model_name=\"m\"} 5.0\n"
                                      "vllm:gpu_cache_usage_perc{model_name=\"m\"} 0.5\n");
  EXPECT_EQ(load.requests, 8);
  EXPECT_FALSE(load.tokens.has_value());
}

TEST(LoadQueryTest, SglangPresetReadsRunningQueuedAndUsedTokens) {
  const MeasuredLoad load = MeasureOk(
      Query("sglang"),
      "sglang:num_running_reqs{model_name=\"m\"} 6.0\nsglang:num_queue_reqs{model_name=\"m\"} 2.0\n"
      "sglang:num_used_tokens{model_name=\"m\"} 12345.6\n");
  EXPECT_EQ(load.requests, 8);
  EXPECT_EQ(load.tokens, 12346);
}

TEST(LoadQueryTest, TgiPresetReadsBatchQueueAndBatchTokens) {
  const MeasuredLoad load =
      MeasureOk(Query("tgi"),
                "tgi_batch_current_size 4\ntgi_queue_size 1\ntgi_batch_current_max_tokens 2048\n");
  EXPECT_EQ(load.requests, 5);
  EXPECT_EQ(load.tokens, 2048);
}

TEST(LoadQueryTest, TritonPresetSumsPendingOverModels) {
  const MeasuredLoad load =
      MeasureOk(Query("triton"),
                "nv_inference_pending_request_count{model=\"a\",version=\"1\"} 4\n"
                "nv_inference_pending_request_count{model=\"b\",version=\"1\"} 1\n");
  EXPECT_EQ(load.requests, 5);
  EXPECT_FALSE(load.tokens.has_value());
}

TEST(LoadQueryTest, FlagsReplaceThePresetsSums) {
  const LoadQuery query = Query("vllm", "vllm:num_requests_running{model_name=\"m\"}", "my_tokens");
  const MeasuredLoad load =
      MeasureOk(query,
                "vllm:num_requests_running{model_name=\"m\"} 3\n"
                "vllm:num_requests_running{model_name=\"other\"} 9\nmy_tokens 70\n");
  EXPECT_EQ(load.requests, 3);
  EXPECT_EQ(load.tokens, 70);
  EXPECT_FALSE(Query("sglang", "", "none").tokens().has_value());
  EXPECT_EQ(Query("", "x + y").requests().Text(), "x + y");
}

TEST(LoadQueryTest, BadFlagsNameTheFlag) {
  absl::StatusOr<LoadQuery> query = LoadQuery::Make("vlm", "", "");
  EXPECT_EQ(query.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(query.status().message(), HasSubstr("--preset"));
  EXPECT_THAT(query.status().message(), HasSubstr("vllm, sglang, tgi, triton"));
  query = LoadQuery::Make("", "", "");
  EXPECT_EQ(query.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(query.status().message(), HasSubstr("--requests_metric"));
  query = LoadQuery::Make("vllm", "a{", "");
  EXPECT_THAT(query.status().message(), HasSubstr("--requests_metric"));
  query = LoadQuery::Make("vllm", "", "b +");
  EXPECT_THAT(query.status().message(), HasSubstr("--tokens_metric"));
}

TEST(LoadQueryTest, MissingMetricIsNotFoundNamingIt) {
  absl::StatusOr<MeasuredLoad> load =
      Query("vllm").Measure(Samples("vllm:num_requests_running 3\n"));
  EXPECT_EQ(load.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(load.status().message(), HasSubstr("vllm:num_requests_waiting"));
  load = Query("sglang").Measure(Samples("sglang:num_running_reqs 1\nsglang:num_queue_reqs 0\n"));
  EXPECT_EQ(load.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(load.status().message(), HasSubstr("sglang:num_used_tokens"));
}

TEST(LoadQueryTest, ValuesAReportCannotCarryAreRefused) {
  const LoadQuery query = Query("", "r", "t");
  for (const char* page : {"r NaN\nt 0\n", "r +Inf\nt 0\n", "r -1\nt 0\n", "r 1000001\nt 0\n",
                           "r 1\nt -1\n", "r 1\nt 1e11\n", "r 1\nt NaN\n"}) {
    absl::StatusOr<MeasuredLoad> load = query.Measure(Samples(page));
    EXPECT_EQ(load.status().code(), absl::StatusCode::kInvalidArgument) << page;
  }
  EXPECT_THAT(query.Measure(Samples("r -1\nt 0\n")).status().message(),
              HasSubstr("in-flight requests (r) is -1"));
  EXPECT_EQ(MeasureOk(query, "r 1000000\nt 1e10\n").tokens, 10'000'000'000);
}

}  // namespace
}  // namespace chainscale
