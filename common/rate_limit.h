// Token buckets by name (an API key, a client address) for the HTTP front door: the
// request rate per key and the throttle on failed keys per client address.
//
// The number of buckets is bounded. A bucket that has refilled completely says nothing a
// new one would not, so it is dropped when room is needed; when `max_buckets` are all
// busy, new names share one overflow bucket, so a flood of names grows no memory and
// escapes no limit.
#ifndef CHAINSCALE_COMMON_RATE_LIMIT_H_
#define CHAINSCALE_COMMON_RATE_LIMIT_H_

#include <cstddef>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace chainscale {

struct RateLimitOptions {
  double per_second = 1;  // refill rate; must be positive
  double burst = 1;       // bucket size: requests allowed at once after a quiet spell
  size_t max_buckets = 10'000;
};

class RateLimiter {
 public:
  // `clock` must outlive the limiter.
  RateLimiter(RateLimitOptions options, const Clock& clock);

  // Takes a token from `name`'s bucket: zero when there was one; otherwise the time until
  // there is (nothing is taken).
  absl::Duration Take(absl::string_view name) ABSL_LOCKS_EXCLUDED(mu_);
  // The time until `name`'s bucket has a token (zero: now), taking nothing.
  absl::Duration Wait(absl::string_view name) const ABSL_LOCKS_EXCLUDED(mu_);
  // Buckets held, the overflow bucket included once used.
  size_t size() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Bucket {
    double tokens;
    absl::Time refilled;
  };
  // Tokens in `bucket` at `now`.
  double Level(const Bucket& bucket, absl::Time now) const;
  // `name`'s bucket, made when missing; the overflow bucket when no room can be made.
  Bucket& FindOrAddLocked(absl::string_view name, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const RateLimitOptions options_;
  const Clock& clock_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
  absl::Time last_sweep_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_RATE_LIMIT_H_
