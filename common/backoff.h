// Reconnect delays: exponential with jitter (gRPC's connection-backoff algorithm). The
// random source is injected so tests see fixed sequences.
#ifndef CHAINSCALE_COMMON_BACKOFF_H_
#define CHAINSCALE_COMMON_BACKOFF_H_

#include <cstdint>
#include <random>

#include "absl/time/time.h"

namespace chainscale {

struct BackoffOptions {
  absl::Duration initial = absl::Seconds(1);
  double multiplier = 1.6;
  absl::Duration max = absl::Seconds(120);
  double jitter = 0.2;  // each delay is scaled by a factor in [1 - jitter, 1 + jitter]
};

class Backoff {
 public:
  explicit Backoff(BackoffOptions options, uint64_t seed = std::random_device{}());

  // The delay before the next attempt; grows until max.
  absl::Duration Next();
  // After a success (a message arrived): the next delay is `initial` again.
  void Reset() { current_ = options_.initial; }

 private:
  BackoffOptions options_;
  absl::Duration current_;
  std::mt19937_64 random_;
};

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_BACKOFF_H_
