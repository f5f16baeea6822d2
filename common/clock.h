// The source of time for windows, delays and timers, injected so that tests drive time by
// hand instead of sleeping.
#ifndef CHAINSCALE_COMMON_CLOCK_H_
#define CHAINSCALE_COMMON_CLOCK_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace chainscale {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

// Wall-clock time from the operating system.
class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }

  // A process-wide instance; never destroyed.
  static const Clock& Get() {
    static const RealClock* const clock = new RealClock();
    return *clock;
  }
};

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_CLOCK_H_
