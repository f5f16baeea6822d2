// LoadScraper: one replica's /metrics turned into load reports. Each Scrape fetches the
// page, parses it, measures in-flight requests (and tokens) with a LoadQuery and offers
// the report to a ReportSink. A scrape that fails offers nothing and withdraws any report
// not yet sent: a stale or made-up value is never reported as measured. The agent then
// stops counting this source after its --report_staleness, and holds a chainlet that has
// replicas but no live source (DESIGN §6).
//
// Every scrape is counted by result on the given Metrics; a failure is logged when it
// starts, when its cause changes (another metric missing, another error) and when
// scrapes succeed again, never once per interval.
#ifndef CHAINSCALE_TOOLS_REPORTER_LOAD_SCRAPER_H_
#define CHAINSCALE_TOOLS_REPORTER_LOAD_SCRAPER_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "chainscale/v1/agent.pb.h"
#include "common/metrics.h"
#include "tools/reporter/load_query.h"

namespace chainscale {

// Where reports go: ReportStream sends them to the agents; tests record them.
class ReportSink {
 public:
  virtual ~ReportSink() = default;
  // The report of the latest scrape; it replaces one not yet sent.
  virtual void Offer(v1::LoadReport report) = 0;
  // The latest scrape measured nothing: a report not yet sent is dropped.
  virtual void Withdraw() = 0;
};

// The body of a replica's /metrics page, or why there is none.
using ScrapeFetch = std::function<absl::StatusOr<std::string>()>;

// An http:// URL split for HttpCall: "host:port" (port 80 when absent) and the target
// (path and query, "/" when absent). INVALID_ARGUMENT for anything else (https included:
// the scrape client speaks plain HTTP).
struct ScrapeUrl {
  std::string address;
  std::string target;
};
absl::StatusOr<ScrapeUrl> ParseScrapeUrl(absl::string_view url);

// GETs `url` within `timeout` and answers the body of a 200; any other status is
// UNAVAILABLE naming it. Pages over 16 MiB are RESOURCE_EXHAUSTED.
ScrapeFetch HttpScrapeFetch(const ScrapeUrl& url, absl::Duration timeout);

enum class ScrapeResult {
  kOk,
  kFetchFailed,    // no answer, or not a 200
  kParseFailed,    // not the text format
  kMissingMetric,  // a metric of the query has no matching sample
  kBadValue,       // NaN, infinite, negative or too large for a report
};
// "ok", "fetch_failed", "parse_failed", "missing_metric", "bad_value": the `result`
// label of chainscale_reporter_scrapes_total.
const char* ScrapeResultName(ScrapeResult result);

struct LoadScraperOptions {
  std::string scrape_url;  // in messages
  std::string chain_id;
  std::string env_name;
  std::string chainlet_name;
  std::string source_id;
};

class LoadScraper {
 public:
  // `sink` and `metrics` must outlive the scraper.
  LoadScraper(LoadScraperOptions options, LoadQuery query, ScrapeFetch fetch, ReportSink* sink,
              Metrics* metrics);

  // One scrape, from fetch to offer. Not for concurrent calls.
  ScrapeResult Scrape();

 private:
  // The outcome's log line, when it differs from the last outcome's.
  void LogChange(ScrapeResult result, absl::string_view cause, absl::string_view detail);

  const LoadScraperOptions options_;
  const LoadQuery query_;
  const ScrapeFetch fetch_;
  ReportSink* const sink_;
  Metrics* const metrics_;
  // What the last scrape's log line was about ("" before the first scrape).
  std::string last_state_;
};

}  // namespace chainscale

#endif  // CHAINSCALE_TOOLS_REPORTER_LOAD_SCRAPER_H_
