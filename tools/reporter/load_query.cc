#include "tools/reporter/load_query.h"

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/load_window.h"

namespace chainscale {
namespace {

void SkipSpaces(absl::string_view* rest) {
  while (!rest->empty() && absl::ascii_isspace(static_cast<unsigned char>(rest->front()))) {
    rest->remove_prefix(1);
  }
}

absl::Status ErrorAt(absl::string_view expression, absl::string_view rest, absl::string_view what) {
  const size_t at = expression.size() - rest.size();
  return absl::InvalidArgumentError(absl::StrCat(
      what, rest.empty() ? " at the end" : absl::StrCat(" at \"", rest.substr(0, 32), "\""),
      " (character ", at + 1, " of \"", expression, "\")"));
}

std::string Name(bool colon, absl::string_view* rest) {
  size_t n = 0;
  auto start = [&](char c) {
    return absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '_' || (colon && c == ':');
  };
  if (n < rest->size() && start((*rest)[n])) {
    ++n;
    while (n < rest->size() &&
           (start((*rest)[n]) || absl::ascii_isdigit(static_cast<unsigned char>((*rest)[n])))) {
      ++n;
    }
  }
  std::string name(rest->substr(0, n));
  rest->remove_prefix(n);
  return name;
}

absl::StatusOr<MetricTerm> ParseTerm(absl::string_view expression, absl::string_view* rest) {
  MetricTerm term;
  term.name = Name(/*colon=*/true, rest);
  if (term.name.empty()) return ErrorAt(expression, *rest, "expected a metric name");
  SkipSpaces(rest);
  if (rest->empty() || rest->front() != '{') return term;
  rest->remove_prefix(1);
  while (true) {
    SkipSpaces(rest);
    if (!rest->empty() && rest->front() == '}') {
      rest->remove_prefix(1);
      return term;
    }
    LabelMatcher matcher;
    matcher.label = Name(/*colon=*/false, rest);
    if (matcher.label.empty()) return ErrorAt(expression, *rest, "expected a label name");
    for (const LabelMatcher& m : term.matchers) {
      if (m.label == matcher.label) {
        return ErrorAt(expression, *rest, absl::StrCat("label ", matcher.label, " twice"));
      }
    }
    SkipSpaces(rest);
    if (absl::ConsumePrefix(rest, "!=")) {
      matcher.equal = false;
    } else if (!absl::ConsumePrefix(rest, "=") || (!rest->empty() && rest->front() == '~')) {
      return ErrorAt(expression, *rest, "expected = or != (regular expressions are not supported)");
    }
    SkipSpaces(rest);
    if (absl::Status s = ReadQuotedLabelValue(rest, &matcher.value); !s.ok()) {
      return ErrorAt(expression, *rest, absl::StrCat("label ", matcher.label, ": ", s.message()));
    }
    term.matchers.push_back(std::move(matcher));
    SkipSpaces(rest);
    if (!absl::ConsumePrefix(rest, ",") && (rest->empty() || rest->front() != '}')) {
      return ErrorAt(expression, *rest, "expected , or }");
    }
  }
}

// The value of `label` in `sample`; "" when it has none (as PromQL matches).
absl::string_view LabelValue(const PrometheusSample& sample, absl::string_view label) {
  for (const auto& [name, value] : sample.labels) {
    if (name == label) return value;
  }
  return "";
}

bool Matches(const MetricTerm& term, const PrometheusSample& sample) {
  for (const LabelMatcher& m : term.matchers) {
    if ((LabelValue(sample, m.label) == m.value) != m.equal) return false;
  }
  return true;
}

}  // namespace

std::string MetricTerm::Text() const {
  if (matchers.empty()) return name;
  std::string text = absl::StrCat(name, "{");
  for (size_t i = 0; i < matchers.size(); ++i) {
    // Escaped as the text format escapes label values.
    std::string value;
    for (char c : matchers[i].value) {
      if (c == '\\' || c == '"') value.push_back('\\');
      if (c == '\n') {
        value += "\\n";
        continue;
      }
      value.push_back(c);
    }
    absl::StrAppend(&text, i == 0 ? "" : ",", matchers[i].label,
                    matchers[i].equal ? "=" : "!=", "\"", value, "\"");
  }
  text.push_back('}');
  return text;
}

absl::StatusOr<MetricSum> MetricSum::Parse(absl::string_view expression) {
  MetricSum sum;
  absl::string_view rest = expression;
  SkipSpaces(&rest);
  if (rest.empty()) return absl::InvalidArgumentError("the metric sum is empty");
  while (true) {
    absl::StatusOr<MetricTerm> term = ParseTerm(expression, &rest);
    if (!term.ok()) return term.status();
    sum.terms_.push_back(*std::move(term));
    SkipSpaces(&rest);
    if (rest.empty()) return sum;
    if (!absl::ConsumePrefix(&rest, "+")) return ErrorAt(expression, rest, "expected +");
    SkipSpaces(&rest);
  }
}

absl::StatusOr<double> MetricSum::Evaluate(const std::vector<PrometheusSample>& samples) const {
  double total = 0;
  for (const MetricTerm& term : terms_) {
    int of_name = 0;
    int matched = 0;
    for (const PrometheusSample& sample : samples) {
      if (sample.name != term.name) continue;
      ++of_name;
      if (!Matches(term, sample)) continue;
      ++matched;
      total += sample.value;
    }
    if (matched == 0) {
      return absl::NotFoundError(of_name == 0
                                     ? absl::StrCat("no sample of ", term.name)
                                     : absl::StrCat("no sample of ", term.Text(), " (", of_name,
                                                    of_name == 1 ? " sample of " : " samples of ",
                                                    term.name, ", none with those labels)"));
    }
  }
  return total;
}

std::string MetricSum::Text() const {
  std::vector<std::string> texts;
  for (const MetricTerm& term : terms_) texts.push_back(term.Text());
  return absl::StrJoin(texts, " + ");
}

const std::vector<LoadPreset>& LoadPresets() {
  static const auto* const presets = new std::vector<LoadPreset>{
      // vLLM: both gauges in vllm/engine/metrics.py (docs.vllm.ai "Production Metrics"):
      // "Number of requests currently running on GPU." and "Number of requests waiting to
      // be processed.". vLLM has token counters (prompt_tokens_total) but no gauge of
      // tokens in flight, so no token count is sent.
      {"vllm", "vllm:num_requests_running + vllm:num_requests_waiting", ""},
      // SGLang: SchedulerMetricsCollector in python/sglang/srt/metrics/collector.py:
      // sglang:num_running_reqs "The number of running requests.", sglang:num_queue_reqs
      // "The number of requests in the waiting queue.", and sglang:num_used_tokens "The
      // number of used tokens." (KV-cache tokens the running requests hold).
      {"sglang", "sglang:num_running_reqs + sglang:num_queue_reqs", "sglang:num_used_tokens"},
      // TGI: the router's gauges (docs "TGI metrics" reference; router/src/infer):
      // tgi_batch_current_size "Current batch size", tgi_queue_size "Current queue
      // size", tgi_batch_current_max_tokens "Maximum tokens for the current batch" (the
      // batch's token budget: an upper bound of its tokens in flight).
      {"tgi", "tgi_batch_current_size + tgi_queue_size", "tgi_batch_current_max_tokens"},
      // Triton: nv_inference_pending_request_count "Instantaneous number of pending
      // requests awaiting execution per-model" (user_guide/metrics.md), summed over the
      // models. Triton's core metrics have no gauge of requests executing (only counters
      // of executions), so requests in execution are not counted; nor tokens.
      {"triton", "nv_inference_pending_request_count", ""},
  };
  return *presets;
}

absl::StatusOr<LoadQuery> LoadQuery::Make(absl::string_view preset, absl::string_view requests,
                                          absl::string_view tokens) {
  std::string requests_text(requests);
  std::string tokens_text(tokens);
  if (!preset.empty()) {
    const LoadPreset* found = nullptr;
    std::vector<std::string> names;
    for (const LoadPreset& p : LoadPresets()) {
      names.push_back(p.name);
      if (p.name == preset) found = &p;
    }
    if (found == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--preset: unknown preset \"", preset, "\"; presets are ", absl::StrJoin(names, ", ")));
    }
    if (requests_text.empty()) requests_text = found->requests;
    if (tokens_text.empty()) tokens_text = found->tokens;
  } else if (requests_text.empty()) {
    return absl::InvalidArgumentError("--requests_metric is required without --preset");
  }
  absl::StatusOr<MetricSum> requests_sum = MetricSum::Parse(requests_text);
  if (!requests_sum.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--requests_metric: ", requests_sum.status().message()));
  }
  std::optional<MetricSum> tokens_sum;
  if (!tokens_text.empty() && tokens_text != "none") {
    absl::StatusOr<MetricSum> parsed = MetricSum::Parse(tokens_text);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tokens_metric: ", parsed.status().message()));
    }
    tokens_sum = *std::move(parsed);
  }
  return LoadQuery(*std::move(requests_sum), std::move(tokens_sum));
}

absl::StatusOr<MeasuredLoad> LoadQuery::Measure(
    const std::vector<PrometheusSample>& samples) const {
  MeasuredLoad load;
  absl::StatusOr<double> requests = requests_.Evaluate(samples);
  if (!requests.ok()) return requests.status();
  constexpr int64_t kMaxRequests = kMaxReportRequestMillis / 1000;
  if (!std::isfinite(*requests) || *requests < 0 || *requests > static_cast<double>(kMaxRequests)) {
    return absl::InvalidArgumentError(absl::StrCat("in-flight requests (", requests_.Text(),
                                                   ") is ", *requests, "; a report carries 0 to ",
                                                   kMaxRequests));
  }
  load.requests = *requests;
  if (tokens_.has_value()) {
    absl::StatusOr<double> tokens = tokens_->Evaluate(samples);
    if (!tokens.ok()) return tokens.status();
    const double max_tokens = static_cast<double>(kMaxReportTokens);
    if (!std::isfinite(*tokens) || *tokens < 0 || *tokens >= max_tokens + 0.5) {
      return absl::InvalidArgumentError(absl::StrCat("in-flight tokens (", tokens_->Text(), ") is ",
                                                     *tokens, "; a report carries 0 to ",
                                                     kMaxReportTokens));
    }
    load.tokens = std::llround(*tokens);
  }
  return load;
}

}  // namespace chainscale
