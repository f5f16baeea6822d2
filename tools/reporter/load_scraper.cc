#include "tools/reporter/load_scraper.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/http_client.h"
#include "common/log.h"
#include "tools/reporter/prometheus_text.h"

namespace chainscale {
namespace {

// Larger pages are refused rather than held: vLLM's is tens of kilobytes.
constexpr size_t kMaxPageBytes = 16 << 20;

constexpr ScrapeResult kResults[] = {ScrapeResult::kOk, ScrapeResult::kFetchFailed,
                                     ScrapeResult::kParseFailed, ScrapeResult::kMissingMetric,
                                     ScrapeResult::kBadValue};

constexpr char kScrapes[] = "chainscale_reporter_scrapes_total";
constexpr char kLastOk[] = "chainscale_reporter_last_scrape_ok";
constexpr char kRequests[] = "chainscale_reporter_in_flight_requests";
constexpr char kTokens[] = "chainscale_reporter_in_flight_tokens";

}  // namespace

absl::StatusOr<ScrapeUrl> ParseScrapeUrl(absl::string_view url) {
  const auto invalid = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("--scrape_url \"", url, "\": ", why));
  };
  absl::string_view rest = url;
  if (absl::StartsWithIgnoreCase(rest, "https://")) {
    return invalid("https is not supported; scrape the replica over http://");
  }
  if (!absl::StartsWithIgnoreCase(rest, "http://")) {
    return invalid("must be an http:// URL, such as http://127.0.0.1:8000/metrics");
  }
  rest.remove_prefix(7);
  const size_t authority_end = rest.find_first_of("/?");
  absl::string_view authority = rest.substr(0, authority_end);
  absl::string_view target =
      authority_end == absl::string_view::npos ? "" : rest.substr(authority_end);
  if (authority.empty()) return invalid("no host");
  if (absl::StrContains(authority, '@')) return invalid("user information is not supported");
  absl::string_view host = authority;
  absl::string_view port_text;
  if (host.front() == '[') {
    const size_t close = host.find(']');
    if (close == absl::string_view::npos) return invalid("unclosed [ in the host");
    if (close + 1 < host.size()) {
      if (host[close + 1] != ':') return invalid("expected :port after ]");
      port_text = host.substr(close + 2);
    }
    host = host.substr(0, close + 1);
  } else if (const size_t colon = host.rfind(':'); colon != absl::string_view::npos) {
    port_text = host.substr(colon + 1);
    host = host.substr(0, colon);
  }
  if (host.empty() || host == "[]") return invalid("no host");
  int port = 80;
  if (!port_text.empty() || absl::EndsWith(authority, ":")) {
    const bool digits = !port_text.empty() && port_text.size() <= 5 &&
                        std::all_of(port_text.begin(), port_text.end(), [](char c) {
                          return absl::ascii_isdigit(static_cast<unsigned char>(c));
                        });
    if (!digits || !absl::SimpleAtoi(port_text, &port) || port < 1 || port > 65535) {
      return invalid("the port must be a number from 1 to 65535");
    }
  }
  ScrapeUrl parsed;
  parsed.address = absl::StrCat(host, ":", port);
  parsed.target = target.empty()          ? "/"
                  : target.front() == '?' ? absl::StrCat("/", target)
                                          : std::string(target);
  return parsed;
}

ScrapeFetch HttpScrapeFetch(const ScrapeUrl& url, absl::Duration timeout) {
  return [url, timeout]() -> absl::StatusOr<std::string> {
    HttpClientRequest request;
    request.target = url.target;
    // The text format: servers that can also write OpenMetrics or protobuf choose it.
    request.headers = {{"Accept", "text/plain;version=0.0.4"}};
    HttpClientOptions options;
    options.timeout = timeout;
    options.max_response_bytes = kMaxPageBytes;
    absl::StatusOr<HttpClientResponse> response = HttpCall(url.address, request, options);
    if (!response.ok()) return response.status();
    if (response->status != 200) {
      return absl::UnavailableError(
          absl::StrCat("HTTP ", response->status, " from http://", url.address, url.target));
    }
    return std::move(response->body);
  };
}

const char* ScrapeResultName(ScrapeResult result) {
  switch (result) {
    case ScrapeResult::kOk:
      return "ok";
    case ScrapeResult::kFetchFailed:
      return "fetch_failed";
    case ScrapeResult::kParseFailed:
      return "parse_failed";
    case ScrapeResult::kMissingMetric:
      return "missing_metric";
    case ScrapeResult::kBadValue:
      return "bad_value";
  }
  return "unknown";
}

LoadScraper::LoadScraper(LoadScraperOptions options, LoadQuery query, ScrapeFetch fetch,
                         ReportSink* sink, Metrics* metrics)
    : options_(std::move(options)),
      query_(std::move(query)),
      fetch_(std::move(fetch)),
      sink_(sink),
      metrics_(metrics) {
  metrics_->Describe(kScrapes, "counter", "Scrapes of the replica's metrics, by result.");
  for (ScrapeResult result : kResults) {
    metrics_->Add(kScrapes, {{"result", ScrapeResultName(result)}}, 0);
  }
  metrics_->Describe(kLastOk, "gauge",
                     "1 when the last scrape measured the load (and a report was offered), "
                     "0 when it failed (and nothing was).");
  metrics_->Set(kLastOk, {}, 0);
  metrics_->Describe(kRequests, "gauge", "In-flight requests the last successful scrape measured.");
  if (query_.tokens().has_value()) {
    metrics_->Describe(kTokens, "gauge", "In-flight tokens the last successful scrape measured.");
  }
}

ScrapeResult LoadScraper::Scrape() {
  ScrapeResult result = ScrapeResult::kOk;
  absl::Status problem;
  MeasuredLoad load;
  if (absl::StatusOr<std::string> page = fetch_(); !page.ok()) {
    result = ScrapeResult::kFetchFailed;
    problem = page.status();
  } else if (absl::StatusOr<std::vector<PrometheusSample>> samples = ParsePrometheusText(*page);
             !samples.ok()) {
    result = ScrapeResult::kParseFailed;
    problem = samples.status();
  } else if (absl::StatusOr<MeasuredLoad> measured = query_.Measure(*samples); !measured.ok()) {
    result = absl::IsNotFound(measured.status()) ? ScrapeResult::kMissingMetric
                                                 : ScrapeResult::kBadValue;
    problem = measured.status();
  } else {
    load = *measured;
  }
  metrics_->Add(kScrapes, {{"result", ScrapeResultName(result)}});
  metrics_->Set(kLastOk, {}, result == ScrapeResult::kOk ? 1 : 0);
  if (result != ScrapeResult::kOk) {
    sink_->Withdraw();
    LogChange(result, problem.message(), problem.message());
    return result;
  }
  v1::LoadReport report;
  report.set_source_id(options_.source_id);
  report.set_chain_id(options_.chain_id);
  report.set_env_name(options_.env_name);
  report.set_chainlet_name(options_.chainlet_name);
  report.set_in_flight_requests(load.requests);
  metrics_->Set(kRequests, {}, load.requests);
  if (load.tokens.has_value()) {
    report.set_in_flight_tokens(*load.tokens);
    metrics_->Set(kTokens, {}, static_cast<double>(*load.tokens));
  }
  sink_->Offer(std::move(report));
  LogChange(result, "",
            absl::StrCat(load.requests, " requests",
                         load.tokens.has_value() ? absl::StrCat(", ", *load.tokens, " tokens") : "",
                         " in flight"));
  return result;
}

void LoadScraper::LogChange(ScrapeResult result, absl::string_view cause,
                            absl::string_view detail) {
  std::string state = absl::StrCat(ScrapeResultName(result), ":", cause);
  if (state == last_state_) return;
  const bool first = last_state_.empty();
  last_state_ = std::move(state);
  const std::string name = ScrapeResultName(result);
  if (result == ScrapeResult::kOk) {
    LogInfo(first ? "scrape measured the load" : "scrapes measure the load again",
            {{"url", options_.scrape_url}, {"load", std::string(detail)}});
    return;
  }
  const char* message = result == ScrapeResult::kMissingMetric
                            ? "metric missing from the scrape; nothing reported until it is back"
                            : "scrape failed; nothing reported until one succeeds";
  LogWarning(message,
             {{"result", name}, {"url", options_.scrape_url}, {"error", std::string(detail)}});
}

}  // namespace chainscale
