// libFuzzer target for the reporter's Prometheus text parser (./dev fuzz): any bytes as a
// scraped page go through ParsePrometheusText, and what parses is measured with a metric
// sum. It aborts when
// - a rejection is not INVALID_ARGUMENT, does not start with "line N: " for a line of the
//   page, or is longer than 1 KiB;
// - a sample that parsed has an invalid metric or label name, or a label twice;
// - the samples, written back in the text format, do not parse to the same samples;
// - evaluating a sum over them fails otherwise than NOT_FOUND (a missing metric);
// and, built with ASan and UBSan, on any memory or undefined-behaviour error.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "tools/reporter/load_query.h"
#include "tools/reporter/prometheus_text.h"

namespace chainscale {
namespace {

void Require(bool condition, const char* what, absl::string_view detail) {
  if (condition) return;
  std::fprintf(stderr, "invariant broken: %s: %.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

void CheckRejection(const absl::Status& status, absl::string_view page) {
  Require(status.code() == absl::StatusCode::kInvalidArgument, "code", status.ToString());
  absl::string_view message = status.message();
  Require(message.size() <= 1024, "message size", message);
  Require(absl::ConsumePrefix(&message, "line "), "names a line", status.message());
  int line = 0;
  const size_t colon = message.find(": ");
  Require(colon != absl::string_view::npos && absl::SimpleAtoi(message.substr(0, colon), &line),
          "line number", status.message());
  const int lines = static_cast<int>(std::count(page.begin(), page.end(), '\n')) + 1;
  Require(line >= 1 && line <= lines, "line in the page", status.message());
}

// The samples in the text format, labels escaped as the format says.
std::string Write(const std::vector<PrometheusSample>& samples) {
  std::string page;
  for (const PrometheusSample& s : samples) {
    absl::StrAppend(&page, s.name, "{");
    for (const auto& [name, value] : s.labels) {
      std::string escaped;
      for (char c : value) {
        if (c == '\n') {
          escaped += "\\n";
          continue;
        }
        if (c == '\\' || c == '"') escaped.push_back('\\');
        escaped.push_back(c);
      }
      absl::StrAppend(&page, name, "=\"", escaped, "\",");
    }
    absl::StrAppend(&page, "} ", std::isnan(s.value) ? "NaN" : absl::StrFormat("%.17g", s.value));
    if (s.timestamp_ms.has_value()) absl::StrAppend(&page, " ", *s.timestamp_ms);
    page.push_back('\n');
  }
  return page;
}

bool SameValue(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

}  // namespace
}  // namespace chainscale

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace chainscale;
  const absl::string_view page(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<std::vector<PrometheusSample>> samples = ParsePrometheusText(page);
  if (!samples.ok()) {
    CheckRejection(samples.status(), page);
    return 0;
  }
  for (const PrometheusSample& s : *samples) {
    Require(IsMetricName(s.name), "metric name", s.name);
    for (size_t i = 0; i < s.labels.size(); ++i) {
      Require(IsLabelName(s.labels[i].first), "label name", s.labels[i].first);
      for (size_t j = 0; j < i; ++j) {
        Require(s.labels[i].first != s.labels[j].first, "label once", s.labels[i].first);
      }
    }
  }
  const std::string written = Write(*samples);
  absl::StatusOr<std::vector<PrometheusSample>> again = ParsePrometheusText(written);
  Require(again.ok(), "written samples parse", again.status().ToString());
  Require(again->size() == samples->size(), "as many samples", written);
  for (size_t i = 0; i < samples->size(); ++i) {
    const PrometheusSample& a = (*samples)[i];
    const PrometheusSample& b = (*again)[i];
    Require(a.name == b.name && a.labels == b.labels && SameValue(a.value, b.value) &&
                a.timestamp_ms == b.timestamp_ms,
            "same sample", written);
  }
  if (!samples->empty()) {
    absl::StatusOr<MetricSum> sum =
        MetricSum::Parse(absl::StrCat((*samples)[0].name, " + vllm:num_requests_waiting"));
    Require(sum.ok(), "sum of a parsed name", sum.status().ToString());
    absl::StatusOr<double> value = sum->Evaluate(*samples);
    Require(value.ok() || absl::IsNotFound(value.status()), "evaluation",
            value.status().ToString());
  }
  return 0;
}
