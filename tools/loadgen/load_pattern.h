// Load patterns for the load generator: how many requests are in flight at a moment of a
// run. Parsed from a short spec:
//   constant:25           25 in flight throughout
//   step:5,25,30s         5, then 25 from 30 s on
//   ramp:0,50,60s         0 rising linearly to 50 over 60 s, then 50
//   trace:FILE            a request trace (TIMESTAMP,ContextTokens,GeneratedTokens) turned
//                         into in-flight requests and tokens by a service-time model
#ifndef CHAINSCALE_TOOLS_LOADGEN_LOAD_PATTERN_H_
#define CHAINSCALE_TOOLS_LOADGEN_LOAD_PATTERN_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tools/simulator/trace.h"

namespace chainscale {

class LoadPattern {
 public:
  virtual ~LoadPattern() = default;
  // In-flight load at `elapsed` since the start of the run.
  virtual InFlight At(absl::Duration elapsed) const = 0;
  // How long the pattern has something to say; infinite for the synthetic ones.
  virtual absl::Duration length() const { return absl::InfiniteDuration(); }
};

// Parses a spec as above. INVALID_ARGUMENT says what was expected.
absl::StatusOr<std::unique_ptr<LoadPattern>> ParseLoadPattern(const std::string& spec,
                                                              const ServiceTimeModel& model);

}  // namespace chainscale

#endif  // CHAINSCALE_TOOLS_LOADGEN_LOAD_PATTERN_H_
