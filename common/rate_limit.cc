#include "common/rate_limit.h"

#include <algorithm>

namespace chainscale {
namespace {

// The overflow bucket's name, which no key or address can be.
constexpr absl::string_view kOverflow = "(overflow)";

}  // namespace

RateLimiter::RateLimiter(RateLimitOptions options, const Clock& clock)
    : options_(options), clock_(clock) {}

double RateLimiter::Level(const Bucket& bucket, absl::Time now) const {
  return std::min(options_.burst,
                  bucket.tokens + absl::ToDoubleSeconds(now - bucket.refilled) * options_.per_second);
}

RateLimiter::Bucket& RateLimiter::FindOrAddLocked(absl::string_view name, absl::Time now) {
  if (auto it = buckets_.find(name); it != buckets_.end()) return it->second;
  if (buckets_.size() >= options_.max_buckets && now - last_sweep_ >= absl::Seconds(1)) {
    // At most one sweep a second, so a flood of new names costs no more than that.
    last_sweep_ = now;
    absl::erase_if(buckets_, [&](const auto& entry) {
      return entry.first != kOverflow && Level(entry.second, now) >= options_.burst;
    });
  }
  if (buckets_.size() >= options_.max_buckets) name = kOverflow;
  return buckets_.try_emplace(name, Bucket{options_.burst, now}).first->second;
}

absl::Duration RateLimiter::Take(absl::string_view name) {
  const absl::Time now = clock_.Now();
  absl::MutexLock lock(&mu_);
  Bucket& bucket = FindOrAddLocked(name, now);
  bucket.tokens = Level(bucket, now);
  bucket.refilled = now;
  if (bucket.tokens >= 1) {
    bucket.tokens -= 1;
    return absl::ZeroDuration();
  }
  return absl::Seconds((1 - bucket.tokens) / options_.per_second);
}

absl::Duration RateLimiter::Wait(absl::string_view name) const {
  const absl::Time now = clock_.Now();
  absl::MutexLock lock(&mu_);
  auto it = buckets_.find(name);
  if (it == buckets_.end()) {
    // A name without a bucket of its own shares the overflow bucket once the map is full.
    if (buckets_.size() < options_.max_buckets) return absl::ZeroDuration();
    it = buckets_.find(kOverflow);
    if (it == buckets_.end()) return absl::ZeroDuration();
  }
  const double level = Level(it->second, now);
  return level >= 1 ? absl::ZeroDuration() : absl::Seconds((1 - level) / options_.per_second);
}

size_t RateLimiter::size() const {
  absl::MutexLock lock(&mu_);
  return buckets_.size();
}

}  // namespace chainscale
