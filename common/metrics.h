// Metrics in the Prometheus text format: counters and gauges with labels, plus collectors
// that render dynamic families (one sample per chainlet, say) when /metrics is scraped.
// Scrapes that arrive while a render is under way wait for it and share its text, so
// parallel scrapes cost one render.
#ifndef CHAINSCALE_COMMON_METRICS_H_
#define CHAINSCALE_COMMON_METRICS_H_

#include <functional>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace chainscale {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

class Metrics {
 public:
  // Declares a family; samples of undeclared families are still rendered, untyped.
  void Describe(absl::string_view name, absl::string_view type, absl::string_view help)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Add(absl::string_view name, const MetricLabels& labels, double delta = 1)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Set(absl::string_view name, const MetricLabels& labels, double value)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Appends rendered samples (with their own # HELP/# TYPE lines) at scrape time.
  void AddCollector(std::function<void(std::string*)> collector) ABSL_LOCKS_EXCLUDED(mu_);

  // Counts one finished RPC: chainscale_rpc_requests_total{method, code} and the summary
  // chainscale_rpc_duration_seconds{method} (_sum and _count).
  void RecordRpc(absl::string_view method, absl::string_view code, absl::Duration elapsed);

  std::string Render() const ABSL_LOCKS_EXCLUDED(mu_, render_mu_);
  // Scrapes waiting for a render under way (to observe the sharing).
  int ScrapesWaiting() const ABSL_LOCKS_EXCLUDED(render_mu_);

 private:
  std::string RenderNow() const ABSL_LOCKS_EXCLUDED(mu_);

  struct Family {
    std::string type;
    std::string help;
    std::map<std::string, double> samples;  // name suffix + rendered labels → value
  };
  mutable absl::Mutex mu_;
  std::map<std::string, Family> families_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void(std::string*)>> collectors_ ABSL_GUARDED_BY(mu_);

  mutable absl::Mutex render_mu_;
  mutable bool rendering_ ABSL_GUARDED_BY(render_mu_) = false;
  mutable uint64_t renders_ ABSL_GUARDED_BY(render_mu_) = 0;  // completed
  mutable int waiting_ ABSL_GUARDED_BY(render_mu_) = 0;
  mutable std::shared_ptr<const std::string> last_ ABSL_GUARDED_BY(render_mu_);
};

// `{a="x",b="y"}` with label values escaped, and cut when longer than 128 bytes (marked
// with a hash of the whole value, so different values stay different); empty for no labels.
std::string RenderLabels(const MetricLabels& labels);

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_METRICS_H_
