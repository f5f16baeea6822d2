// Reporter: chainscale-reporter, the sidecar that reports the in-flight load of a replica
// that does not know chainscale (DESIGN §12). Every `interval` its LoadScraper scrapes the
// replica's Prometheus endpoint and offers the report to its ReportStream, which streams
// it to the agents; its HTTP port serves /healthz and /metrics (scrapes by result, reports
// sent, accepted and rejected, stream reconnects, the last values measured).
#ifndef CHAINSCALE_TOOLS_REPORTER_REPORTER_H_
#define CHAINSCALE_TOOLS_REPORTER_REPORTER_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/http_server.h"
#include "common/metrics.h"
#include "common/tls.h"
#include "tools/reporter/load_query.h"
#include "tools/reporter/load_scraper.h"
#include "tools/reporter/report_stream.h"

namespace chainscale {

struct ReporterOptions {
  std::string scrape_url;  // http://host:port/path
  absl::Duration interval = absl::Seconds(1);
  // Per scrape; shorter than `interval`. Zero: half the interval.
  absl::Duration scrape_timeout = absl::ZeroDuration();
  // Sums of metric names; see LoadQuery::Make.
  std::string preset = "vllm";
  std::string requests_metric;
  std::string tokens_metric;
  std::string chain_id;
  std::string env_name = "production";
  std::string chainlet_name;
  std::string source_id;
  // The agents and the API key; the credentials come from `tls`.
  ReportStreamOptions stream;
  std::string http_listen = "127.0.0.1:8091";  // /healthz and /metrics; empty: none
  int http_max_connections = 64;
  // As the agent's flags: with `ca`, agents' certificates are verified against it (and
  // `cert` and `key` are presented to them); with `cert` and `key`, the HTTP port serves
  // HTTPS (and, with `ca`, asks for client certificates).
  TlsFiles tls;
};

class Reporter {
 public:
  // Checks the options (INVALID_ARGUMENT naming the flag), opens the HTTP port, starts the
  // stream and the scrape loop.
  static absl::StatusOr<std::unique_ptr<Reporter>> Start(ReporterOptions options);
  ~Reporter();  // shuts down

  // Stops scraping, ends the stream and closes the HTTP port. Idempotent.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  int http_port() const { return http_port_; }

 private:
  Reporter(ReporterOptions options, LoadQuery query, ScrapeFetch fetch);
  absl::Status StartServing();
  void RunScrapes() ABSL_LOCKS_EXCLUDED(mu_);
  void RenderStreamStats(std::string* out) const;

  const ReporterOptions options_;
  Metrics metrics_;
  ReportStream stream_;
  LoadScraper scraper_;
  std::unique_ptr<HttpServer> http_;
  int http_port_ = 0;
  std::atomic<bool> serving_{false};
  std::thread scrape_thread_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace chainscale

#endif  // CHAINSCALE_TOOLS_REPORTER_REPORTER_H_
