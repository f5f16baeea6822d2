#include "common/backoff.h"

#include <algorithm>

namespace chainscale {

Backoff::Backoff(BackoffOptions options, uint64_t seed)
    : options_(options), current_(options.initial), random_(seed) {}

absl::Duration Backoff::Next() {
  const absl::Duration base = current_;
  current_ = std::min(current_ * options_.multiplier, options_.max);
  std::uniform_real_distribution<double> factor(1 - options_.jitter, 1 + options_.jitter);
  return base * factor(random_);
}

}  // namespace chainscale
