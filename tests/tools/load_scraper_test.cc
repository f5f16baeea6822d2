// LoadScraper: scraped pages become reports; a failed scrape offers nothing and withdraws
// what was not sent; each result is counted; a failure is logged once per change of
// cause, naming the metric and the URL. Also the URL split and the HTTP fetch against a
// real HTTP server on port 0.
#include "tools/reporter/load_scraper.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/http_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chainscale {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kUrl[] = "http://127.0.0.1:9/metrics";

class RecordingSink final : public ReportSink {
 public:
  void Offer(v1::LoadReport report) override { offers.push_back(std::move(report)); }
  void Withdraw() override { ++withdrawals; }

  std::vector<v1::LoadReport> offers;
  int withdrawals = 0;
};

std::string VllmPage(double running, double waiting) {
  return absl::StrCat(
      "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name=\"m\"} ",
      running, "\n# TYPE vllm:num_requests_waiting gauge\n",
      "vllm:num_requests_waiting{model_name=\"m\"} ", waiting, "\n");
}

class LoadScraperTest : public ::testing::Test {
 protected:
  LoadScraper MakeScraper(absl::string_view preset = "vllm", absl::string_view tokens = "") {
    absl::StatusOr<LoadQuery> query = LoadQuery::Make(preset, "", tokens);
    EXPECT_TRUE(query.ok()) << query.status();
    return LoadScraper(
        {kUrl, "demo", "production", "HelloWorld", "replica-0"}, *query, [this]() { return page_; },
        &sink_, &metrics_);
  }

  // The value of one sample of the scraper's metrics; -1 when absent.
  double MetricValue(absl::string_view series) {
    for (absl::string_view line : absl::StrSplit(metrics_.Render(), '\n')) {
      if (absl::ConsumePrefix(&line, series) && absl::ConsumePrefix(&line, " ")) {
        double value = -1;
        EXPECT_TRUE(absl::SimpleAtod(line, &value)) << line;
        return value;
      }
    }
    return -1;
  }

  // Runs `scrapes` scrapes and answers the lines they logged.
  std::vector<std::string> LoggedBy(LoadScraper& scraper, int scrapes, ScrapeResult expected) {
    ::testing::internal::CaptureStderr();
    for (int i = 0; i < scrapes; ++i) EXPECT_EQ(scraper.Scrape(), expected);
    const std::string logged = ::testing::internal::GetCapturedStderr();
    return absl::StrSplit(logged, '\n', absl::SkipEmpty());
  }

  absl::StatusOr<std::string> page_;
  RecordingSink sink_;
  Metrics metrics_;
};

TEST_F(LoadScraperTest, AScrapeBecomesAReport) {
  LoadScraper scraper = MakeScraper();
  page_ = VllmPage(3, 5);
  EXPECT_EQ(scraper.Scrape(), ScrapeResult::kOk);
  ASSERT_EQ(sink_.offers.size(), 1u);
  const v1::LoadReport& report = sink_.offers[0];
  EXPECT_EQ(report.source_id(), "replica-0");
  EXPECT_EQ(report.chain_id(), "demo");
  EXPECT_EQ(report.env_name(), "production");
  EXPECT_EQ(report.chainlet_name(), "HelloWorld");
  EXPECT_EQ(report.in_flight_requests(), 8);
  EXPECT_FALSE(report.has_in_flight_tokens());
  EXPECT_EQ(sink_.withdrawals, 0);
  EXPECT_EQ(MetricValue("chainscale_reporter_scrapes_total{result=\"ok\"}"), 1);
  EXPECT_EQ(MetricValue("chainscale_reporter_scrapes_total{result=\"missing_metric\"}"), 0);
  EXPECT_EQ(MetricValue("chainscale_reporter_in_flight_requests"), 8);
  EXPECT_EQ(MetricValue("chainscale_reporter_last_scrape_ok"), 1);
}

TEST_F(LoadScraperTest, TokensAreReportedWhenTheQueryHasThem) {
  LoadScraper scraper = MakeScraper("sglang");
  page_ = "sglang:num_running_reqs 2\nsglang:num_queue_reqs 1\nsglang:num_used_tokens 900\n";
  EXPECT_EQ(scraper.Scrape(), ScrapeResult::kOk);
  ASSERT_EQ(sink_.offers.size(), 1u);
  EXPECT_EQ(sink_.offers[0].in_flight_requests(), 3);
  EXPECT_EQ(sink_.offers[0].in_flight_tokens(), 900);
  EXPECT_EQ(MetricValue("chainscale_reporter_in_flight_tokens"), 900);
}

TEST_F(LoadScraperTest, AMissingMetricIsCountedEveryTimeAndLoggedOncePerChange) {
  LoadScraper scraper = MakeScraper();
  page_ = VllmPage(3, 5);
  EXPECT_EQ(scraper.Scrape(), ScrapeResult::kOk);

  page_ = "vllm:num_requests_running 3\n";
  std::vector<std::string> logged = LoggedBy(scraper, 5, ScrapeResult::kMissingMetric);
  ASSERT_EQ(logged.size(), 1u) << absl::StrJoin(logged, "\n");
  EXPECT_THAT(logged[0], HasSubstr("level=warning"));
  EXPECT_THAT(logged[0], HasSubstr("vllm:num_requests_waiting"));
  EXPECT_THAT(logged[0], HasSubstr(kUrl));
  EXPECT_THAT(logged[0], HasSubstr("result=missing_metric"));
  EXPECT_EQ(sink_.offers.size(), 1u);  // nothing more offered
  EXPECT_EQ(sink_.withdrawals, 5);
  EXPECT_EQ(MetricValue("chainscale_reporter_scrapes_total{result=\"missing_metric\"}"), 5);
  EXPECT_EQ(MetricValue("chainscale_reporter_last_scrape_ok"), 0);
  // The last measured value stays on show, marked as not current by last_scrape_ok.
  EXPECT_EQ(MetricValue("chainscale_reporter_in_flight_requests"), 8);

  // Another metric missing is another cause: logged again, once.
  page_ = "vllm:num_requests_waiting 3\n";
  logged = LoggedBy(scraper, 3, ScrapeResult::kMissingMetric);
  ASSERT_EQ(logged.size(), 1u);
  EXPECT_THAT(logged[0], HasSubstr("vllm:num_requests_running"));

  // Recovery is logged once too.
  page_ = VllmPage(1, 0);
  logged = LoggedBy(scraper, 3, ScrapeResult::kOk);
  ASSERT_EQ(logged.size(), 1u);
  EXPECT_THAT(logged[0], HasSubstr("level=info"));
  EXPECT_THAT(logged[0], Not(HasSubstr("level=warning")));
  EXPECT_EQ(sink_.offers.size(), 4u);
  EXPECT_EQ(sink_.offers.back().in_flight_requests(), 1);
}

TEST_F(LoadScraperTest, EachFailureIsCountedByResultAndOffersNothing) {
  LoadScraper scraper = MakeScraper();
  page_ = absl::UnavailableError("HTTP to 127.0.0.1:9 failed: Connection refused");
  EXPECT_EQ(scraper.Scrape(), ScrapeResult::kFetchFailed);
  page_ = "vllm:num_requests_running{ 3\n";
  EXPECT_EQ(scraper.Scrape(), ScrapeResult::kParseFailed);
  page_ = VllmPage(-3, 1);
  EXPECT_EQ(scraper.Scrape(), ScrapeResult::kBadValue);
  page_ = absl::StrCat("vllm:num_requests_running NaN\nvllm:num_requests_waiting 1\n");
  EXPECT_EQ(scraper.Scrape(), ScrapeResult::kBadValue);
  EXPECT_TRUE(sink_.offers.empty());
  EXPECT_EQ(sink_.withdrawals, 4);
  EXPECT_EQ(MetricValue("chainscale_reporter_scrapes_total{result=\"fetch_failed\"}"), 1);
  EXPECT_EQ(MetricValue("chainscale_reporter_scrapes_total{result=\"parse_failed\"}"), 1);
  EXPECT_EQ(MetricValue("chainscale_reporter_scrapes_total{result=\"bad_value\"}"), 2);
  EXPECT_EQ(MetricValue("chainscale_reporter_scrapes_total{result=\"ok\"}"), 0);
}

TEST_F(LoadScraperTest, AParseErrorIsLoggedWithItsLine) {
  LoadScraper scraper = MakeScraper();
  page_ = "vllm:num_requests_running 3\nvllm:num_requests_waiting{ 3\n";
  std::vector<std::string> logged = LoggedBy(scraper, 2, ScrapeResult::kParseFailed);
  ASSERT_EQ(logged.size(), 1u);
  EXPECT_THAT(logged[0], HasSubstr("line 2"));
  EXPECT_THAT(logged[0], HasSubstr(kUrl));
}

TEST(ScrapeUrlTest, SplitsHttpUrls) {
  absl::StatusOr<ScrapeUrl> url = ParseScrapeUrl("http://127.0.0.1:8000/metrics");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(url->address, "127.0.0.1:8000");
  EXPECT_EQ(url->target, "/metrics");
  url = ParseScrapeUrl("http://replica.local/stats/prometheus?format=text");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(url->address, "replica.local:80");
  EXPECT_EQ(url->target, "/stats/prometheus?format=text");
  url = ParseScrapeUrl("http://[::1]:9400");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(url->address, "[::1]:9400");
  EXPECT_EQ(url->target, "/");
  for (const char* bad :
       {"", "127.0.0.1:8000/metrics", "https://x/metrics", "http://", "http:///metrics",
        "http://x:notaport/metrics", "http://x:0/", "http://x:70000/", "ftp://x/"}) {
    EXPECT_EQ(ParseScrapeUrl(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(HttpScrapeFetchTest, ReadsTheBodyOfA200AndNamesAnyOtherStatus) {
  HttpServer server;
  HttpRoute metrics;
  metrics.methods = {"GET"};
  metrics.path = "/metrics";
  metrics.handler = [](const HttpRequest&) {
    HttpResponse response;
    response.body = "m 1\n";
    return response;
  };
  server.Route(metrics);
  HttpRoute broken;
  broken.methods = {"GET"};
  broken.path = "/broken";
  broken.handler = [](const HttpRequest&) { return HttpError(503, "warming up"); };
  server.Route(broken);
  absl::StatusOr<int> port = server.Start("127.0.0.1:0");
  ASSERT_TRUE(port.ok()) << port.status();
  const std::string base = absl::StrCat("http://127.0.0.1:", *port);

  absl::StatusOr<std::string> body =
      HttpScrapeFetch(*ParseScrapeUrl(base + "/metrics"), absl::Seconds(5))();
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(*body, "m 1\n");

  body = HttpScrapeFetch(*ParseScrapeUrl(base + "/broken"), absl::Seconds(5))();
  EXPECT_EQ(body.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(body.status().message(), HasSubstr("HTTP 503"));

  server.Stop();
  body = HttpScrapeFetch(*ParseScrapeUrl(base + "/metrics"), absl::Seconds(5))();
  EXPECT_EQ(body.status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace chainscale
