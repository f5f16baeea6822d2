#include "tools/loadgen/load_pattern.h"

#include <cmath>
#include <fstream>
#include <functional>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace chainscale {
namespace {

constexpr double kPi = 3.14159265358979323846;

// A synthetic shape: in-flight requests as a function of the time since the start.
class Shape final : public LoadPattern {
 public:
  explicit Shape(std::function<double(absl::Duration)> requests)
      : requests_(std::move(requests)) {}
  InFlight At(absl::Duration elapsed) const override {
    return {std::llround(requests_(elapsed)), 0};
  }

 private:
  std::function<double(absl::Duration)> requests_;
};

class Trace final : public LoadPattern {
 public:
  explicit Trace(std::vector<InFlight> samples) : samples_(std::move(samples)) {}
  InFlight At(absl::Duration elapsed) const override {
    const int64_t i = absl::ToInt64Seconds(elapsed);
    if (i < 0 || i >= static_cast<int64_t>(samples_.size())) return {0, 0};
    return samples_[i];
  }
  absl::Duration length() const override {
    return absl::Seconds(static_cast<int64_t>(samples_.size()));
  }

 private:
  std::vector<InFlight> samples_;  // one per second
};

absl::Status Usage(const std::string& spec, bool with_trace) {
  return absl::InvalidArgumentError(absl::StrCat(
      "bad load pattern \"", spec,
      "\": use constant:N, step:FROM,TO,AT, ramp:FROM,TO,OVER, spike:BASE,PEAK,AT,FOR, "
      "pulse:LOW,HIGH,LOW_FOR,HIGH_FOR, wave:LOW,HIGH,PERIOD",
      with_trace ? ", points:EVERY,V1,V2,... or trace:FILE" : " or points:EVERY,V1,V2,...",
      " (counts between 0 and 1000000; AT, FOR, OVER, PERIOD and EVERY are durations such "
      "as 30s or 5m; FOR, PERIOD and EVERY above 0)"));
}

bool ParseCount(const std::string& s, double* out) {
  return absl::SimpleAtod(s, out) && std::isfinite(*out) && *out >= 0 &&
         *out <= kMaxPatternInFlight;
}

bool ParseNonNegativeDuration(const std::string& s, absl::Duration* out) {
  return absl::ParseDuration(s, out) && *out >= absl::ZeroDuration() &&
         *out < absl::InfiniteDuration();
}

// Parses `args` against `signature`: 'n' a count, 'd' a duration ≥ 0, 'p' a duration > 0.
bool ParseArgs(const std::vector<std::string>& args, absl::string_view signature,
               std::vector<double>* counts, std::vector<absl::Duration>* durations) {
  if (args.size() != signature.size()) return false;
  for (size_t i = 0; i < args.size(); ++i) {
    if (signature[i] == 'n') {
      double n;
      if (!ParseCount(args[i], &n)) return false;
      counts->push_back(n);
    } else {
      absl::Duration d;
      if (!ParseNonNegativeDuration(args[i], &d)) return false;
      if (signature[i] == 'p' && d <= absl::ZeroDuration()) return false;
      durations->push_back(d);
    }
  }
  return true;
}

absl::StatusOr<std::unique_ptr<LoadPattern>> ParseShape(const std::string& spec,
                                                        const std::string& kind,
                                                        const std::vector<std::string>& args,
                                                        bool with_trace) {
  std::vector<double> n;
  std::vector<absl::Duration> d;
  if (kind == "constant" && ParseArgs(args, "n", &n, &d)) {
    return std::make_unique<Shape>([v = n[0]](absl::Duration) { return v; });
  }
  if (kind == "step" && ParseArgs(args, "nnd", &n, &d)) {
    return std::make_unique<Shape>(
        [from = n[0], to = n[1], at = d[0]](absl::Duration t) { return t < at ? from : to; });
  }
  if (kind == "ramp" && ParseArgs(args, "nnd", &n, &d)) {
    return std::make_unique<Shape>([from = n[0], to = n[1], over = d[0]](absl::Duration t) {
      const double f =
          over <= absl::ZeroDuration() ? 1.0 : std::min(1.0, absl::FDivDuration(t, over));
      return from + (to - from) * f;
    });
  }
  if (kind == "spike" && ParseArgs(args, "nndp", &n, &d)) {
    return std::make_unique<Shape>(
        [base = n[0], peak = n[1], at = d[0], length = d[1]](absl::Duration t) {
          return t >= at && t < at + length ? peak : base;
        });
  }
  if (kind == "pulse" && ParseArgs(args, "nnpp", &n, &d)) {
    return std::make_unique<Shape>(
        [low = n[0], high = n[1], low_for = d[0], period = d[0] + d[1]](absl::Duration t) {
          return t % period < low_for ? low : high;
        });
  }
  if (kind == "wave" && ParseArgs(args, "nnp", &n, &d)) {
    return std::make_unique<Shape>([low = n[0], high = n[1], period = d[0]](absl::Duration t) {
      const double phase = absl::FDivDuration(t % period, period);
      return low + (high - low) * (1 - std::cos(2 * kPi * phase)) / 2;
    });
  }
  if (kind == "points" && args.size() >= 2 &&
      args.size() <= static_cast<size_t>(kMaxPatternPoints) + 1 &&
      ParseArgs({args[0]}, "p", &n, &d)) {
    for (size_t i = 1; i < args.size(); ++i) {
      double v;
      if (!ParseCount(args[i], &v)) return Usage(spec, with_trace);
      n.push_back(v);
    }
    return std::make_unique<Shape>([values = n, every = d[0]](absl::Duration t) {
      const double position = std::max(0.0, absl::FDivDuration(t, every));
      const size_t k = static_cast<size_t>(position);
      if (k + 1 >= values.size()) return values.back();
      return values[k] + (values[k + 1] - values[k]) * (position - static_cast<double>(k));
    });
  }
  return Usage(spec, with_trace);
}

// The shape of `spec`, or its usage error.
absl::StatusOr<std::unique_ptr<LoadPattern>> ParseSpec(const std::string& spec,
                                                       bool with_trace) {
  const std::vector<std::string> kind_args = absl::StrSplit(spec, absl::MaxSplits(':', 1));
  if (kind_args.size() != 2) return Usage(spec, with_trace);
  return ParseShape(spec, kind_args[0], absl::StrSplit(kind_args[1], ','), with_trace);
}

}  // namespace

absl::StatusOr<std::unique_ptr<LoadPattern>> ParseLoadShape(const std::string& spec) {
  return ParseSpec(spec, /*with_trace=*/false);
}

absl::StatusOr<std::unique_ptr<LoadPattern>> ParseLoadPattern(const std::string& spec,
                                                              const ServiceTimeModel& model) {
  const std::vector<std::string> kind_args = absl::StrSplit(spec, absl::MaxSplits(':', 1));
  if (kind_args.size() != 2 || kind_args[0] != "trace") return ParseSpec(spec, true);
  std::ifstream file(kind_args[1]);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot open trace ", kind_args[1]));
  absl::StatusOr<std::vector<TraceRequest>> trace = ParseTrace(file);
  if (!trace.ok()) {
    return absl::Status(trace.status().code(),
                        absl::StrCat(kind_args[1], ": ", trace.status().message()));
  }
  if (trace->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(kind_args[1], " holds no requests"));
  }
  return TracePattern(*trace, model);
}

std::unique_ptr<LoadPattern> TracePattern(const std::vector<TraceRequest>& trace,
                                          const ServiceTimeModel& model) {
  const absl::Time start = absl::FromUnixSeconds(absl::ToUnixSeconds(trace.front().arrival));
  return std::make_unique<Trace>(SampleInFlight(trace, model, start, absl::Seconds(1)));
}

}  // namespace chainscale
