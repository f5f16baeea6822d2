// Waiting for a condition that another thread or process makes true: polled, bounded in
// time, never a sleep standing in for synchronisation.
#ifndef CHAINSCALE_TESTS_TESTING_WAIT_H_
#define CHAINSCALE_TESTS_TESTING_WAIT_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace chainscale::testing {

// Polls `done` every 2 ms until it holds (true) or `timeout` passes (false).
template <typename Predicate>
bool WaitFor(Predicate done, absl::Duration timeout = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

}  // namespace chainscale::testing

#endif  // CHAINSCALE_TESTS_TESTING_WAIT_H_
