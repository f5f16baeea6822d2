// LoadWindow: one chainlet's in-flight load, aggregated per second over its sources and
// averaged over the chainlet's autoscaling window (DESIGN §6).
//
// Definitions, in whole seconds of Unix time:
// - A source's value counts for the second of its latest report and the following
//   seconds until it reports again, for `staleness_seconds` seconds in all; after that it
//   counts 0 and the source is forgotten.
// - The total of a second is the sum over sources of the value each holds at the end of
//   that second (for the current second: now).
// - The average at time t is the mean of the totals of the last `window_seconds` seconds
//   ending with t's second. Until the chainlet has been observed for a whole window, it
//   is the mean over the seconds since the first report (as Knative does), so a fresh
//   chainlet reacts to its first report at full strength.
//
// Requests are kept in thousandths (milli-requests) and tokens as integers, so sums are
// exact and replica counts computed from them have no rounding error. Values and the
// number of sources are bounded (see the limits below) so that no sum can overflow:
// 10 000 sources × 1e10 tokens × 3600 s < 2^63.
#ifndef CHAINSCALE_COMMON_LOAD_WINDOW_H_
#define CHAINSCALE_COMMON_LOAD_WINDOW_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"

namespace chainscale {

// One source's in-flight load at one moment.
struct LoadSample {
  int64_t request_millis = 0;     // in-flight requests × 1000
  std::optional<int64_t> tokens;  // in-flight tokens, when the source reports them
};

// Exact sums behind a window average: the mean is sum / seconds.
struct WindowLoad {
  int64_t request_millis_sum = 0;
  int64_t token_sum = 0;
  int64_t seconds = 0;      // seconds averaged over; 0 before the first report
  bool has_tokens = false;  // some source reported tokens

  double MeanRequests() const;
  double MeanTokens() const;
};

// Largest values one report may carry: 1e6 in-flight requests, 1e10 in-flight tokens.
inline constexpr int64_t kMaxReportRequestMillis = 1'000'000'000;
inline constexpr int64_t kMaxReportTokens = 10'000'000'000;
// Default cap on the sources whose values count at once for one chainlet.
inline constexpr int32_t kDefaultMaxSources = 10'000;

class LoadWindow {
 public:
  // `window_seconds` ≥ 1, `staleness_seconds` ≥ 1, 1 ≤ `max_sources` ≤ 10 000.
  LoadWindow(int32_t window_seconds, int32_t staleness_seconds,
             int32_t max_sources = kDefaultMaxSources);

  LoadWindow(const LoadWindow&) = delete;
  LoadWindow& operator=(const LoadWindow&) = delete;
  LoadWindow(LoadWindow&&) = default;
  LoadWindow& operator=(LoadWindow&&) = default;

  // Records `source_id`'s value at `now`. A `now` earlier than a time already seen counts
  // as that later time (the window never moves backwards). INVALID_ARGUMENT for a
  // negative or too large value, RESOURCE_EXHAUSTED for a new source beyond
  // `max_sources`; either way nothing is recorded.
  absl::Status Report(absl::string_view source_id, const LoadSample& sample, absl::Time now);

  // Moves the window to `now` and returns the sums for its average.
  WindowLoad Average(absl::Time now);

  // Changes the window length, keeping the most recent seconds. After growing, the
  // average covers the seconds still held until the longer window has filled.
  void Resize(int32_t window_seconds);

  // True when a report from `source_id` would be taken (a known source, or room for one
  // more).
  bool CanAccept(absl::string_view source_id) const {
    return static_cast<int32_t>(sources_.size()) < max_sources_ || sources_.contains(source_id);
  }
  int32_t max_sources() const { return max_sources_; }
  bool Knows(absl::string_view source_id) const { return sources_.contains(source_id); }
  // The sum of the sources' latest values (as of the last report or average).
  int64_t current_request_millis() const { return current_request_millis_; }
  int64_t current_tokens() const { return current_tokens_; }

  int32_t window_seconds() const { return capacity_; }
  // Sources whose values currently count.
  size_t source_count() const { return sources_.size(); }
  // Approximate heap bytes used, for memory accounting.
  size_t MemoryBytes() const;

 private:
  struct Source {
    int64_t request_millis = 0;
    int64_t tokens = 0;
    int64_t last_second = 0;
  };

  // Closes every second up to `second`, expiring stale sources on the way.
  void AdvanceTo(int64_t second);
  void ExpireSourcesAt(int64_t second);
  // Adds `delta` to the current second's totals (and the window sums).
  void AddToCurrent(int64_t request_millis_delta, int64_t token_delta);
  size_t Slot(int64_t second) const {
    return static_cast<size_t>(((second % capacity_) + capacity_) % capacity_);
  }

  int32_t capacity_;
  int32_t staleness_seconds_;
  int32_t max_sources_;
  std::unique_ptr<int64_t[]> request_ring_;  // per-second totals, indexed by second % capacity_
  std::unique_ptr<int64_t[]> token_ring_;    // allocated on the first token report

  absl::flat_hash_map<std::string, Source> sources_;
  int64_t current_request_millis_ = 0;  // sum of the sources' values now
  int64_t current_tokens_ = 0;
  int64_t request_sum_ = 0;             // sum of the ring's totals
  int64_t token_sum_ = 0;
  int64_t current_second_ = 0;          // second the ring ends with; valid once started
  int64_t history_start_second_ = 0;    // earliest second whose total the ring holds
  int64_t next_expiry_second_ = 0;      // no source expires before this second
  bool started_ = false;
};

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_LOAD_WINDOW_H_
