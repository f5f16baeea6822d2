#include "tools/reporter/reporter.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/http_port.h"
#include "common/log.h"
#include "common/names.h"

namespace chainscale {
namespace {

absl::Status CheckName(absl::string_view flag, std::optional<std::string> problem) {
  if (!problem.has_value()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(flag, ": ", *problem));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Reporter>> Reporter::Start(ReporterOptions options) {
  absl::StatusOr<ScrapeUrl> url = ParseScrapeUrl(options.scrape_url);
  if (!url.ok()) return url.status();
  if (options.interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--interval must be positive");
  }
  if (options.scrape_timeout == absl::ZeroDuration()) {
    options.scrape_timeout = options.interval / 2;
  }
  if (options.scrape_timeout <= absl::ZeroDuration() ||
      options.scrape_timeout >= options.interval) {
    return absl::InvalidArgumentError(
        absl::StrCat("--scrape_timeout must be positive and shorter than --interval (",
                     absl::FormatDuration(options.interval), ")"));
  }
  for (absl::Status s :
       {CheckName("--chain_id", ChainIdProblem(options.chain_id)),
        CheckName("--env_name", EnvironmentNameProblem(options.env_name)),
        CheckName("--chainlet_name", ChainletNameProblem(options.chainlet_name))}) {
    if (!s.ok()) return s;
  }
  if (options.source_id.empty()) return absl::InvalidArgumentError("--source_id must not be empty");
  if (options.stream.agents.empty()) {
    return absl::InvalidArgumentError("--agents needs at least one host:port");
  }
  for (const std::string& agent : options.stream.agents) {
    if (absl::StatusOr<std::pair<std::string, int>> split = SplitHostPort(agent); !split.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--agents: ", split.status().message()));
    }
  }
  absl::StatusOr<LoadQuery> query =
      LoadQuery::Make(options.preset, options.requests_metric, options.tokens_metric);
  if (!query.ok()) return query.status();
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      MakeChannelCredentials(options.tls);
  if (!credentials.ok()) return credentials.status();
  options.stream.credentials = *credentials;

  const std::string requests_text = query->requests().Text();
  const std::string tokens_text = query->tokens().has_value() ? query->tokens()->Text() : "none";
  ScrapeFetch fetch = HttpScrapeFetch(*url, options.scrape_timeout);
  std::unique_ptr<Reporter> reporter(
      new Reporter(std::move(options), *std::move(query), std::move(fetch)));
  if (absl::Status s = reporter->StartServing(); !s.ok()) {
    reporter->Shutdown();
    return s;
  }
  const ReporterOptions& o = reporter->options_;
  LogInfo("reporter serving",
          {{"http", absl::StrCat(reporter->http_port_)},
           {"scrape_url", o.scrape_url},
           {"requests", requests_text},
           {"tokens", tokens_text},
           {"agents", absl::StrJoin(o.stream.agents, ",")},
           {"chainlet", absl::StrCat(o.chain_id, "/", o.env_name, "/", o.chainlet_name)},
           {"source_id", o.source_id},
           {"interval", absl::FormatDuration(o.interval)}});
  return reporter;
}

Reporter::Reporter(ReporterOptions options, LoadQuery query, ScrapeFetch fetch)
    : options_(std::move(options)),
      stream_(options_.stream),
      scraper_({options_.scrape_url, options_.chain_id, options_.env_name, options_.chainlet_name,
                options_.source_id},
               std::move(query), std::move(fetch), &stream_, &metrics_) {
  metrics_.AddCollector([this](std::string* out) { RenderStreamStats(out); });
}

Reporter::~Reporter() { Shutdown(); }

absl::Status Reporter::StartServing() {
  if (!options_.http_listen.empty()) {
    absl::StatusOr<HttpServerOptions> http_options =
        HttpOptionsFor(options_.tls, options_.http_max_connections);
    if (!http_options.ok()) return http_options.status();
    http_options->worker_threads = 2;  // /metrics renders a few lines
    http_ = std::make_unique<HttpServer>(*std::move(http_options));
    AddStatusRoutes(*http_, metrics_, serving_);
    absl::StatusOr<int> port = http_->Start(options_.http_listen);
    if (!port.ok()) return port.status();
    http_port_ = *port;
  }
  stream_.Start();
  scrape_thread_ = std::thread([this] { RunScrapes(); });
  serving_ = true;
  return absl::OkStatus();
}

void Reporter::Shutdown() {
  serving_ = false;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (scrape_thread_.joinable()) scrape_thread_.join();
  stream_.Stop();
  if (http_ != nullptr) http_->Stop();
}

void Reporter::RunScrapes() {
  absl::Time next = absl::Now();
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    scraper_.Scrape();
    // On the interval's schedule; a tick missed (a slow scrape) is skipped, not caught up.
    const absl::Time now = absl::Now();
    next += options_.interval;
    if (next <= now) next += options_.interval * std::ceil((now - next) / options_.interval);
    absl::MutexLock lock(&mu_);
    if (mu_.AwaitWithDeadline(absl::Condition(&stopping_), next)) return;
  }
}

void Reporter::RenderStreamStats(std::string* out) const {
  const ReportStream::Stats stats = stream_.stats();
  auto family = [out](absl::string_view name, absl::string_view type, absl::string_view help,
                      int64_t value) {
    absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n", name, " ",
                    value, "\n");
  };
  family("chainscale_reporter_reports_sent_total", "counter",
         "Reports written to the stream to the agents.", stats.reports_sent);
  family("chainscale_reporter_reports_accepted_total", "counter",
         "Reports the agents answered as taken in.", stats.reports_accepted);
  family("chainscale_reporter_reports_rejected_total", "counter",
         "Reports the agents refused (the log says why).", stats.reports_rejected);
  family("chainscale_reporter_stream_reconnects_total", "counter",
         "Streams to an agent tried after the first, connected or not (another agent, or "
         "the same again).",
         std::max<int64_t>(0, stats.stream_attempts - 1));
  family("chainscale_reporter_stream_connected", "gauge", "1 while a stream to an agent is open.",
         stats.connected ? 1 : 0);
}

}  // namespace chainscale
