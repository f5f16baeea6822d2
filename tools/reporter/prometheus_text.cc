#include "tools/reporter/prometheus_text.h"

#include <algorithm>
#include <cmath>
#include <system_error>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/charconv.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/utf8.h"

namespace chainscale {
namespace {

// Quoted text in messages is cut to this many bytes.
constexpr size_t kQuoteBytes = 64;

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

void SkipBlanks(absl::string_view* rest) {
  while (!rest->empty() && IsBlank(rest->front())) rest->remove_prefix(1);
}

// The next run of characters up to a blank (or the end).
absl::string_view NextToken(absl::string_view* rest) {
  size_t n = 0;
  while (n < rest->size() && !IsBlank((*rest)[n])) ++n;
  absl::string_view token = rest->substr(0, n);
  rest->remove_prefix(n);
  return token;
}

// `text` for a message: C-escaped and cut.
std::string Quote(absl::string_view text) {
  const bool cut = text.size() > kQuoteBytes;
  return absl::StrCat("\"", absl::CHexEscape(text.substr(0, kQuoteBytes)), cut ? "...\"" : "\"");
}

bool IsNameStart(char c, bool colon) {
  return absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '_' || (colon && c == ':');
}
bool IsNameChar(char c, bool colon) {
  return IsNameStart(c, colon) || absl::ascii_isdigit(static_cast<unsigned char>(c));
}

// The longest name at the start of `*rest` (metric names allow ':'), consumed; empty
// when `*rest` does not start with a name character.
absl::string_view ReadName(absl::string_view* rest, bool colon) {
  size_t n = 0;
  if (n < rest->size() && IsNameStart((*rest)[n], colon)) {
    ++n;
    while (n < rest->size() && IsNameChar((*rest)[n], colon)) ++n;
  }
  absl::string_view name = rest->substr(0, n);
  rest->remove_prefix(n);
  return name;
}

// The text format's float: decimal notation (no hex, no '_') or NaN / Inf in any case,
// with an optional sign. expfmt uses Go's ParseFloat, which also takes hex and
// "infinity"; exporters write neither.
absl::Status ParseValue(absl::string_view token, double* value) {
  const auto invalid = [&] {
    return absl::InvalidArgumentError(absl::StrCat("invalid value ", Quote(token)));
  };
  absl::string_view digits = token;
  bool negative = false;
  if (!digits.empty() && (digits.front() == '+' || digits.front() == '-')) {
    negative = digits.front() == '-';
    digits.remove_prefix(1);
  }
  if (absl::EqualsIgnoreCase(digits, "nan")) {
    *value = std::nan("");
    return absl::OkStatus();
  }
  if (absl::EqualsIgnoreCase(digits, "inf")) {
    *value = negative ? -INFINITY : INFINITY;
    return absl::OkStatus();
  }
  if (digits.empty()) return invalid();
  for (char c : digits) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c)) && c != '.' && c != 'e' && c != 'E' &&
        c != '+' && c != '-') {
      return invalid();
    }
  }
  double parsed = 0;
  const absl::from_chars_result result =
      absl::from_chars(digits.data(), digits.data() + digits.size(), parsed);
  if (result.ptr != digits.data() + digits.size() || result.ec == std::errc::invalid_argument) {
    return invalid();
  }
  if (result.ec == std::errc::result_out_of_range && std::abs(parsed) > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("value ", Quote(token), " is out of range for a double"));
  }
  *value = negative ? -parsed : parsed;
  return absl::OkStatus();
}

absl::Status ParseTimestamp(absl::string_view token, int64_t* timestamp) {
  absl::string_view digits = token;
  if (!digits.empty() && digits.front() == '-') digits.remove_prefix(1);
  const bool all_digits = !digits.empty() && std::all_of(digits.begin(), digits.end(), [](char c) {
    return absl::ascii_isdigit(static_cast<unsigned char>(c));
  });
  if (!all_digits || !absl::SimpleAtoi(token, timestamp)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid timestamp ", Quote(token)));
  }
  return absl::OkStatus();
}

// HELP text: any bytes, with the escapes \\ and \n.
absl::Status CheckHelpText(absl::string_view text) {
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\') continue;
    if (i + 1 == text.size() || (text[i + 1] != '\\' && text[i + 1] != 'n')) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid escape ", Quote(text.substr(i, 2)), " in HELP text"));
    }
    ++i;
  }
  return absl::OkStatus();
}

// The sample names of a family of `type`: its name, and for histograms and summaries the
// names with their suffixes.
std::vector<std::string> SampleNamesOf(absl::string_view family, absl::string_view type) {
  std::vector<std::string> names = {std::string(family)};
  if (type == "histogram") names.push_back(absl::StrCat(family, "_bucket"));
  if (type == "histogram" || type == "summary") {
    names.push_back(absl::StrCat(family, "_sum"));
    names.push_back(absl::StrCat(family, "_count"));
  }
  return names;
}

class Parser {
 public:
  absl::StatusOr<std::vector<PrometheusSample>> Parse(absl::string_view text) {
    int line_number = 0;
    while (!text.empty()) {
      ++line_number;
      const size_t end = text.find('\n');
      absl::string_view line = text.substr(0, end);
      text.remove_prefix(end == absl::string_view::npos ? text.size() : end + 1);
      if (absl::Status s = ParseLine(line, line_number); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": ", s.message()));
      }
    }
    return std::move(samples_);
  }

 private:
  absl::Status ParseLine(absl::string_view line, int line_number) {
    SkipBlanks(&line);
    if (line.empty()) return absl::OkStatus();
    if (line.front() == '#') return ParseComment(line.substr(1));
    return ParseSample(line, line_number);
  }

  absl::Status ParseComment(absl::string_view rest) {
    SkipBlanks(&rest);
    const absl::string_view keyword = NextToken(&rest);
    if (keyword != "HELP" && keyword != "TYPE") return absl::OkStatus();  // a comment
    SkipBlanks(&rest);
    const absl::string_view name = NextToken(&rest);
    if (!IsMetricName(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid metric name ", Quote(name), " in ", keyword));
    }
    SkipBlanks(&rest);
    if (keyword == "HELP") {
      if (!helped_.insert(std::string(name)).second) {
        return absl::InvalidArgumentError(absl::StrCat("second HELP for ", name));
      }
      return CheckHelpText(rest);
    }
    const absl::string_view type = NextToken(&rest);
    SkipBlanks(&rest);
    if (type != "counter" && type != "gauge" && type != "histogram" && type != "summary" &&
        type != "untyped") {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown type ", Quote(type), " for ", name,
                       " (counter, gauge, histogram, summary or untyped)"));
    }
    if (!rest.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected ", Quote(rest), " after the type"));
    }
    if (!typed_.insert(std::string(name)).second) {
      return absl::InvalidArgumentError(absl::StrCat("second TYPE for ", name));
    }
    for (const std::string& sample_name : SampleNamesOf(name, type)) {
      if (auto it = sampled_.find(sample_name); it != sampled_.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("TYPE for ", name, " after its samples (first on line ", it->second, ")"));
      }
    }
    return absl::OkStatus();
  }

  absl::Status ParseSample(absl::string_view rest, int line_number) {
    PrometheusSample sample;
    sample.line = line_number;
    const absl::string_view name = ReadName(&rest, /*colon=*/true);
    if (name.empty() || (!rest.empty() && !IsBlank(rest.front()) && rest.front() != '{')) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid metric name ", Quote(name.empty() ? NextToken(&rest) : name)));
    }
    sample.name = std::string(name);
    SkipBlanks(&rest);
    if (!rest.empty() && rest.front() == '{') {
      rest.remove_prefix(1);
      if (absl::Status s = ParseLabels(&rest, &sample.labels); !s.ok()) return s;
    }
    SkipBlanks(&rest);
    const absl::string_view value = NextToken(&rest);
    if (value.empty()) return absl::InvalidArgumentError(absl::StrCat("no value for ", name));
    if (absl::Status s = ParseValue(value, &sample.value); !s.ok()) return s;
    SkipBlanks(&rest);
    if (!rest.empty()) {
      int64_t timestamp = 0;
      if (absl::Status s = ParseTimestamp(NextToken(&rest), &timestamp); !s.ok()) return s;
      sample.timestamp_ms = timestamp;
      SkipBlanks(&rest);
      if (!rest.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("unexpected ", Quote(rest), " after the timestamp"));
      }
    }
    // One sample per series: the key is the name and the sorted label set.
    std::vector<std::pair<std::string, std::string>> sorted = sample.labels;
    std::sort(sorted.begin(), sorted.end());
    std::string series = sample.name;
    series.push_back('{');
    for (size_t i = 0; i < sorted.size(); ++i) {
      absl::StrAppend(&series, i == 0 ? "" : ",", sorted[i].first, "=\"",
                      absl::CEscape(sorted[i].second), "\"");
    }
    series.push_back('}');
    if (auto [it, inserted] = series_.try_emplace(series, line_number); !inserted) {
      return absl::InvalidArgumentError(absl::StrCat(
          "second sample of ",
          series.size() > 2 * kQuoteBytes ? absl::StrCat(series.substr(0, 2 * kQuoteBytes), "...")
                                          : series,
          " (first on line ", it->second, ")"));
    }
    sampled_.try_emplace(sample.name, line_number);
    samples_.push_back(std::move(sample));
    return absl::OkStatus();
  }

  // After '{': label pairs up to and including '}'.
  static absl::Status ParseLabels(absl::string_view* rest,
                                  std::vector<std::pair<std::string, std::string>>* labels) {
    while (true) {
      SkipBlanks(rest);
      if (rest->empty()) return absl::InvalidArgumentError("labels not closed with '}'");
      if (rest->front() == '}') {
        rest->remove_prefix(1);
        return absl::OkStatus();
      }
      const absl::string_view label = ReadName(rest, /*colon=*/false);
      if (label.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("invalid label name at ", Quote(*rest)));
      }
      SkipBlanks(rest);
      if (rest->empty() || rest->front() != '=') {
        return absl::InvalidArgumentError(
            absl::StrCat("expected '=' after label ", label, ", got ", Quote(*rest)));
      }
      rest->remove_prefix(1);
      SkipBlanks(rest);
      std::string value;
      if (absl::Status s = ReadQuotedLabelValue(rest, &value); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("label ", label, ": ", s.message()));
      }
      for (const auto& [existing, unused] : *labels) {
        if (existing == label) {
          return absl::InvalidArgumentError(absl::StrCat("label ", label, " twice"));
        }
      }
      labels->emplace_back(std::string(label), std::move(value));
      SkipBlanks(rest);
      if (!rest->empty() && rest->front() == ',') {
        rest->remove_prefix(1);
      } else if (rest->empty() || rest->front() != '}') {
        return absl::InvalidArgumentError(
            absl::StrCat("expected ',' or '}' after label ", label, ", got ", Quote(*rest)));
      }
    }
  }

  std::vector<PrometheusSample> samples_;
  absl::flat_hash_set<std::string> helped_;
  absl::flat_hash_set<std::string> typed_;
  absl::flat_hash_map<std::string, int> sampled_;  // sample name → its first line
  absl::flat_hash_map<std::string, int> series_;   // series → its line
};

}  // namespace

bool IsMetricName(absl::string_view name) {
  absl::string_view rest = name;
  return !ReadName(&rest, /*colon=*/true).empty() && rest.empty();
}

bool IsLabelName(absl::string_view name) {
  absl::string_view rest = name;
  return !ReadName(&rest, /*colon=*/false).empty() && rest.empty();
}

absl::Status ReadQuotedLabelValue(absl::string_view* rest, std::string* value) {
  if (rest->empty() || rest->front() != '"') {
    return absl::InvalidArgumentError("value must be quoted");
  }
  value->clear();
  size_t i = 1;
  while (true) {
    if (i >= rest->size()) return absl::InvalidArgumentError("unterminated value");
    const char c = (*rest)[i];
    if (c == '"') break;
    if (c == '\\') {
      const char next = i + 1 < rest->size() ? (*rest)[i + 1] : '\0';
      if (next == '\\' || next == '"') {
        value->push_back(next);
      } else if (next == 'n') {
        value->push_back('\n');
      } else {
        return absl::InvalidArgumentError(absl::StrCat("invalid escape \\",
                                                       absl::CHexEscape(rest->substr(i + 1, 1)),
                                                       " (only \\\\, \\\" and \\n)"));
      }
      i += 2;
      continue;
    }
    const size_t start = i;
    if (!DecodeUtf8(*rest, &i).has_value()) {
      return absl::InvalidArgumentError(absl::StrCat("value is not valid UTF-8 at byte ", start));
    }
    value->append(rest->data() + start, i - start);
  }
  rest->remove_prefix(i + 1);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<PrometheusSample>> ParsePrometheusText(absl::string_view text) {
  return Parser().Parse(text);
}

}  // namespace chainscale
