// A strict parser of the Prometheus text exposition format, version 0.0.4: what
// chainscale-reporter reads from a replica's /metrics.
//
// Hand-written because Debian packages no C++ parser of the format: prometheus-cpp-dev,
// Debian's Prometheus library for C++, only writes it (text_serializer.h); the parsers
// that exist are Go (prometheus/common's expfmt) and Python (prometheus_client).
//
// What it accepts, after the format's description and the reference parser (expfmt):
// - lines end with '\n' (the last may lack it); blank lines and '#' comments are skipped;
//   blanks are spaces and tabs, nothing else ('\r' is an error);
// - `# HELP name text` (text escapes \\ and \n) and `# TYPE name counter|gauge|histogram|
//   summary|untyped`, each at most once per name, and a TYPE before the samples of its
//   family (name, or name_bucket/_sum/_count for histograms, name_sum/_count for summaries);
// - samples `name{label="value",...} value [timestamp]`: names [a-zA-Z_:][a-zA-Z0-9_:]*,
//   label names [a-zA-Z_][a-zA-Z0-9_]*, each at most once per sample; label values valid
//   UTF-8 with the escapes \\ \" \n only; a trailing comma and blanks around the
//   punctuation in the braces; values as decimal floating point or NaN, +Inf, -Inf, Inf
//   (case-insensitive), finite values within a double's range; an optional integer
//   timestamp in milliseconds; one sample per series (name and label set).
// Anything else is INVALID_ARGUMENT naming the line and what is wrong with it, never a
// crash whatever the bytes (a fuzz target holds this: tests/fuzz/prometheus_text_fuzzer.cc).
#ifndef CHAINSCALE_TOOLS_REPORTER_PROMETHEUS_TEXT_H_
#define CHAINSCALE_TOOLS_REPORTER_PROMETHEUS_TEXT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace chainscale {

struct PrometheusSample {
  std::string name;
  // In the order given, values unescaped.
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;
  std::optional<int64_t> timestamp_ms;
  int line = 0;  // 1-based, for messages
};

// The samples of `text`, in order.
absl::StatusOr<std::vector<PrometheusSample>> ParsePrometheusText(absl::string_view text);

// Whether `name` is a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) or label name
// ([a-zA-Z_][a-zA-Z0-9_]*).
bool IsMetricName(absl::string_view name);
bool IsLabelName(absl::string_view name);

// Reads a quoted label value at `*rest` (starting with '"'): unescapes it into `*value`
// and advances `*rest` past the closing quote. An error says what is wrong. Shared with
// the reporter's metric expressions, which quote label values the same way.
absl::Status ReadQuotedLabelValue(absl::string_view* rest, std::string* value);

}  // namespace chainscale

#endif  // CHAINSCALE_TOOLS_REPORTER_PROMETHEUS_TEXT_H_
