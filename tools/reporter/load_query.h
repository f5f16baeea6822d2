// How a replica's metrics become in-flight load: a LoadQuery holds two sums of metric
// terms, one for in-flight requests and an optional one for in-flight tokens, each
// evaluated over the samples of one scrape. Presets name the sums of the model servers
// chainscale knows (vLLM, SGLang, TGI, Triton); flags give any other sum.
//
// A sum is written `term + term + ...`; a term is a metric name with optional label
// matchers, `name{label="value",label!="value"}`, values quoted and escaped as in the
// text format. A term's value is the sum of the samples of that name whose labels match
// (a label a sample does not have matches as the empty string, as in PromQL).
#ifndef CHAINSCALE_TOOLS_REPORTER_LOAD_QUERY_H_
#define CHAINSCALE_TOOLS_REPORTER_LOAD_QUERY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tools/reporter/prometheus_text.h"

namespace chainscale {

struct LabelMatcher {
  std::string label;
  bool equal = true;  // `=`; false for `!=`
  std::string value;
};

struct MetricTerm {
  std::string name;
  std::vector<LabelMatcher> matchers;

  // The term written back: `name{label="value"}` (matchers in the order given).
  std::string Text() const;
};

class MetricSum {
 public:
  // INVALID_ARGUMENT saying where `expression` goes wrong.
  static absl::StatusOr<MetricSum> Parse(absl::string_view expression);

  // The sum of the terms' values. NOT_FOUND naming the first term that matches no sample
  // (the metric is missing from the scrape, or none of its samples has those labels).
  absl::StatusOr<double> Evaluate(const std::vector<PrometheusSample>& samples) const;

  const std::vector<MetricTerm>& terms() const { return terms_; }
  // `term + term`, each as MetricTerm::Text writes it.
  std::string Text() const;

 private:
  std::vector<MetricTerm> terms_;
};

// The sums a model server's /metrics needs. `tokens` is empty where the server has no
// gauge of tokens in flight: the reporter then sends no token count.
struct LoadPreset {
  std::string name;
  std::string requests;
  std::string tokens;
};

// vllm, sglang, tgi, triton: see load_query.cc for where each metric name comes from.
const std::vector<LoadPreset>& LoadPresets();

// In-flight load as one scrape measures it.
struct MeasuredLoad {
  double requests = 0;
  std::optional<int64_t> tokens;  // rounded to the nearest token
};

class LoadQuery {
 public:
  // The preset named `preset` (INVALID_ARGUMENT listing the presets when there is none;
  // empty: no preset, then `requests` is required), with its sums replaced by
  // `requests` and `tokens` where those are not empty. `tokens` "none" measures no
  // tokens. Errors name the flag: --preset, --requests_metric, --tokens_metric.
  static absl::StatusOr<LoadQuery> Make(absl::string_view preset, absl::string_view requests,
                                        absl::string_view tokens);

  // NOT_FOUND when a term matches no sample (the message names it); INVALID_ARGUMENT
  // when a sum is NaN, infinite, negative or above what a report may carry (1e6 requests,
  // 1e10 tokens).
  absl::StatusOr<MeasuredLoad> Measure(const std::vector<PrometheusSample>& samples) const;

  const MetricSum& requests() const { return requests_; }
  const std::optional<MetricSum>& tokens() const { return tokens_; }

 private:
  LoadQuery(MetricSum requests, std::optional<MetricSum> tokens)
      : requests_(std::move(requests)), tokens_(std::move(tokens)) {}

  MetricSum requests_;
  std::optional<MetricSum> tokens_;
};

}  // namespace chainscale

#endif  // CHAINSCALE_TOOLS_REPORTER_LOAD_QUERY_H_
