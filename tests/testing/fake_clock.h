// A Clock that moves only when a test moves it, so windows, delays and timers are tested
// without sleeping.
#ifndef CHAINSCALE_TESTS_TESTING_FAKE_CLOCK_H_
#define CHAINSCALE_TESTS_TESTING_FAKE_CLOCK_H_

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace chainscale::testing {

class FakeClock final : public Clock {
 public:
  // Starts at a fixed, whole-second instant so every run sees the same times.
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'700'000'000)) : now_(start) {}

  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }

  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace chainscale::testing

#endif  // CHAINSCALE_TESTS_TESTING_FAKE_CLOCK_H_
