// Request traces (TIMESTAMP,ContextTokens,GeneratedTokens rows, as in the Azure LLM
// inference trace) and the explicit service-time model that turns them into in-flight
// load over time, for replaying realistic traffic through the decision algorithm.
#ifndef CHAINSCALE_TOOLS_SIMULATOR_TRACE_H_
#define CHAINSCALE_TOOLS_SIMULATOR_TRACE_H_

#include <cstdint>
#include <istream>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace chainscale {

struct TraceRequest {
  absl::Time arrival;
  int64_t context_tokens = 0;
  int64_t generated_tokens = 0;
};

// Parses a CSV trace with a header line. Rows must be in arrival order; a malformed row
// is an INVALID_ARGUMENT naming its line.
absl::StatusOr<std::vector<TraceRequest>> ParseTrace(std::istream& in);

// How long a request stays in flight: a fixed overhead, a prefill time per context token
// and a decode time per generated token.
struct ServiceTimeModel {
  absl::Duration overhead = absl::Milliseconds(50);
  absl::Duration per_context_token = absl::Microseconds(200);   // 5000 tokens/s prefill
  absl::Duration per_generated_token = absl::Milliseconds(20);  // 50 tokens/s decode

  absl::Duration ServiceTime(const TraceRequest& r) const {
    return overhead + per_context_token * r.context_tokens +
           per_generated_token * r.generated_tokens;
  }
};

// In-flight requests and tokens at one instant.
struct InFlight {
  int64_t requests = 0;
  int64_t tokens = 0;  // context + generated tokens of the requests in flight
};

// In-flight load sampled at `start + k * step` for k = 0, 1, ... while that instant is
// before the last request completes. A request is in flight from its arrival until
// arrival + service time.
std::vector<InFlight> SampleInFlight(const std::vector<TraceRequest>& trace,
                                     const ServiceTimeModel& model, absl::Time start,
                                     absl::Duration step);

}  // namespace chainscale

#endif  // CHAINSCALE_TOOLS_SIMULATOR_TRACE_H_
