// Load patterns: how many requests are in flight at a moment of a run. The load generator
// plays them against an agent; the simulator replays them through the decision loop. Both
// parse the same short specs (AT, FOR, OVER, PERIOD and EVERY are durations such as 30s,
// 5m, 24h; counts may be fractional and are rounded to whole requests):
//   constant:25               25 in flight throughout
//   step:5,25,30s             5, then 25 from 30 s on
//   ramp:0,50,60s             0 rising linearly to 50 over 60 s, then 50
//   spike:2,20,10m,1m         2, with a spike to 20 from 10 m on for 1 m
//   pulse:0,8,20m,5m          0 for 20 m, then 8 for 5 m, repeating (idle, then a burst)
//   wave:2,20,24h             a sine from 2 up to 20 and back over each 24 h (diurnal)
//   points:5m,2,8,14,3        through 2, 8, 14 and 3 at 0, 5, 10 and 15 m, linearly;
//                             then 3 (a shape drawn by hand)
//   trace:FILE                a request trace (TIMESTAMP,ContextTokens,GeneratedTokens)
//                             turned into in-flight requests and tokens by a service-time
//                             model
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

// Largest in-flight count a synthetic shape may ask for (what one load report may carry).
inline constexpr double kMaxPatternInFlight = 1'000'000;
// Most values a points: shape may list.
inline constexpr int kMaxPatternPoints = 1000;

// Parses any spec above. INVALID_ARGUMENT says what was expected; NOT_FOUND when a
// trace file cannot be opened.
absl::StatusOr<std::unique_ptr<LoadPattern>> ParseLoadPattern(const std::string& spec,
                                                              const ServiceTimeModel& model);

// Parses the synthetic shapes only: never opens a file, so it is safe for specs that come
// over the network.
absl::StatusOr<std::unique_ptr<LoadPattern>> ParseLoadShape(const std::string& spec);

// A pattern replaying `trace` under `model`, from the whole second of its first arrival
// until its last request completes. The trace must not be empty.
std::unique_ptr<LoadPattern> TracePattern(const std::vector<TraceRequest>& trace,
                                          const ServiceTimeModel& model);

}  // namespace chainscale

#endif  // CHAINSCALE_TOOLS_LOADGEN_LOAD_PATTERN_H_
