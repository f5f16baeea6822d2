#include "tools/simulator/trace.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace chainscale {

absl::StatusOr<std::vector<TraceRequest>> ParseTrace(std::istream& in) {
  std::vector<TraceRequest> trace;
  std::string line;
  int64_t line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    const absl::string_view row = absl::StripAsciiWhitespace(line);
    if (line_number == 1 || row.empty()) continue;  // header, blank lines
    std::vector<absl::string_view> cells = absl::StrSplit(row, ',');
    TraceRequest r;
    std::string error;
    if (cells.size() != 3) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, ": expected 3 columns, got ", cells.size()));
    }
    if (!absl::ParseTime("%Y-%m-%d %H:%M:%E*S", cells[0], absl::UTCTimeZone(), &r.arrival,
                         &error)) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, ": bad TIMESTAMP \"", cells[0], "\": ", error));
    }
    if (!absl::SimpleAtoi(cells[1], &r.context_tokens) || r.context_tokens < 0 ||
        !absl::SimpleAtoi(cells[2], &r.generated_tokens) || r.generated_tokens < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, ": token counts must be non-negative integers"));
    }
    if (!trace.empty() && r.arrival < trace.back().arrival) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, ": arrivals must be in order"));
    }
    trace.push_back(r);
  }
  return trace;
}

std::vector<InFlight> SampleInFlight(const std::vector<TraceRequest>& trace,
                                     const ServiceTimeModel& model, absl::Time start,
                                     absl::Duration step) {
  // +1 at arrival, -1 at completion, swept in time order against the sample instants.
  struct Event {
    absl::Time at;
    int64_t requests;
    int64_t tokens;
  };
  std::vector<Event> events;
  events.reserve(trace.size() * 2);
  absl::Time last_end = start;
  for (const TraceRequest& r : trace) {
    const int64_t tokens = r.context_tokens + r.generated_tokens;
    const absl::Time end = r.arrival + model.ServiceTime(r);
    events.push_back({r.arrival, 1, tokens});
    events.push_back({end, -1, -tokens});
    last_end = std::max(last_end, end);
  }
  std::sort(events.begin(), events.end(),
            [](const Event& a, const Event& b) { return a.at < b.at; });
  std::vector<InFlight> samples;
  InFlight now;
  size_t next = 0;
  for (absl::Time t = start; t < last_end; t += step) {
    while (next < events.size() && events[next].at <= t) {
      now.requests += events[next].requests;
      now.tokens += events[next].tokens;
      ++next;
    }
    samples.push_back(now);
  }
  return samples;
}

}  // namespace chainscale
