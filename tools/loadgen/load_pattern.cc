#include "tools/loadgen/load_pattern.h"

#include <cmath>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace chainscale {
namespace {

class Constant final : public LoadPattern {
 public:
  explicit Constant(double in_flight) : in_flight_(in_flight) {}
  InFlight At(absl::Duration) const override {
    return {std::llround(in_flight_), 0};
  }

 private:
  double in_flight_;
};

class Step final : public LoadPattern {
 public:
  Step(double before, double after, absl::Duration at) : before_(before), after_(after), at_(at) {}
  InFlight At(absl::Duration elapsed) const override {
    return {std::llround(elapsed < at_ ? before_ : after_), 0};
  }

 private:
  double before_, after_;
  absl::Duration at_;
};

class Ramp final : public LoadPattern {
 public:
  Ramp(double from, double to, absl::Duration over) : from_(from), to_(to), over_(over) {}
  InFlight At(absl::Duration elapsed) const override {
    const double f = over_ <= absl::ZeroDuration()
                         ? 1.0
                         : std::min(1.0, absl::FDivDuration(elapsed, over_));
    return {std::llround(from_ + (to_ - from_) * f), 0};
  }

 private:
  double from_, to_;
  absl::Duration over_;
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

absl::Status Usage(const std::string& spec) {
  return absl::InvalidArgumentError(absl::StrCat(
      "bad load pattern \"", spec,
      "\": use constant:N, step:FROM,TO,AT, ramp:FROM,TO,OVER or trace:FILE "
      "(AT and OVER are durations such as 30s)"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<LoadPattern>> ParseLoadPattern(const std::string& spec,
                                                              const ServiceTimeModel& model) {
  const std::vector<std::string> kind_args = absl::StrSplit(spec, absl::MaxSplits(':', 1));
  if (kind_args.size() != 2) return Usage(spec);
  const std::string& kind = kind_args[0];
  const std::vector<std::string> args = absl::StrSplit(kind_args[1], ',');
  std::vector<double> numbers;
  absl::Duration duration;
  auto number = [](const std::string& s, double* out) {
    return absl::SimpleAtod(s, out) && std::isfinite(*out) && *out >= 0;
  };
  if (kind == "constant") {
    double n;
    if (args.size() != 1 || !number(args[0], &n)) return Usage(spec);
    return std::make_unique<Constant>(n);
  }
  if (kind == "step" || kind == "ramp") {
    double a, b;
    if (args.size() != 3 || !number(args[0], &a) || !number(args[1], &b) ||
        !absl::ParseDuration(args[2], &duration) || duration < absl::ZeroDuration()) {
      return Usage(spec);
    }
    if (kind == "step") return std::make_unique<Step>(a, b, duration);
    return std::make_unique<Ramp>(a, b, duration);
  }
  if (kind == "trace") {
    std::ifstream file(kind_args[1]);
    if (!file) return absl::NotFoundError(absl::StrCat("cannot open trace ", kind_args[1]));
    absl::StatusOr<std::vector<TraceRequest>> trace = ParseTrace(file);
    if (!trace.ok()) return trace.status();
    if (trace->empty()) return absl::InvalidArgumentError("the trace holds no requests");
    const absl::Time start =
        absl::FromUnixSeconds(absl::ToUnixSeconds(trace->front().arrival));
    return std::make_unique<Trace>(SampleInFlight(*trace, model, start, absl::Seconds(1)));
  }
  return Usage(spec);
}

}  // namespace chainscale
