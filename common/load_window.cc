#include "common/load_window.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"

namespace chainscale {
namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

std::unique_ptr<int64_t[]> ZeroedRing(int32_t length) {
  return std::unique_ptr<int64_t[]>(new int64_t[length]());
}

int32_t BucketSecondsFor(int32_t window_seconds) {
  return window_seconds <= kExactWindowSeconds
             ? 1
             : (window_seconds + kExactWindowSeconds - 1) / kExactWindowSeconds;
}

}  // namespace

double WindowLoad::MeanRequests() const {
  return seconds == 0 ? 0.0 : static_cast<double>(request_millis_sum) / 1000.0 / seconds;
}

double WindowLoad::MeanTokens() const {
  return seconds == 0 ? 0.0 : static_cast<double>(token_sum) / seconds;
}

LoadWindow::LoadWindow(int32_t window_seconds, int32_t staleness_seconds, int32_t max_sources)
    : window_seconds_(std::max(window_seconds, 1)),
      bucket_seconds_(BucketSecondsFor(window_seconds_)),
      slots_(0),
      staleness_seconds_(std::max(staleness_seconds, 1)),
      max_sources_(std::clamp(max_sources, 1, kDefaultMaxSources)),
      next_expiry_second_(kNever) {
  AllocateRings();
}

void LoadWindow::AllocateRings() {
  // Exact windows hold the last window_seconds_ seconds; bucketed ones every bucket the
  // window touches, the partly covered oldest one included.
  slots_ = bucket_seconds_ == 1
               ? window_seconds_
               : (window_seconds_ + bucket_seconds_ - 1) / bucket_seconds_ + 1;
  request_ring_ = ZeroedRing(slots_);
  token_ring_.reset();
  request_total_ = 0;
  token_total_ = 0;
}

absl::Status LoadWindow::Report(absl::string_view source_id, const LoadSample& sample,
                                absl::Time now) {
  if (sample.request_millis < 0 || sample.request_millis > kMaxReportRequestMillis) {
    return absl::InvalidArgumentError(absl::StrCat(
        "in_flight_requests must be between 0 and ", kMaxReportRequestMillis / 1000,
        ", got ", static_cast<double>(sample.request_millis) / 1000));
  }
  if (sample.tokens.has_value() && (*sample.tokens < 0 || *sample.tokens > kMaxReportTokens)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "in_flight_tokens must be between 0 and ", kMaxReportTokens, ", got ", *sample.tokens));
  }
  const int64_t second = absl::ToUnixSeconds(now);
  // Moving time forward records nothing; it expires stale sources before the cap check.
  if (started_) AdvanceTo(second);
  auto it = sources_.find(source_id);
  if (it == sources_.end()) {
    if (static_cast<int32_t>(sources_.size()) >= max_sources_) {
      return absl::ResourceExhaustedError(
          absl::StrCat("more than ", max_sources_, " sources report for one chainlet"));
    }
    it = sources_.try_emplace(std::string(source_id)).first;
  }
  if (!started_) {
    started_ = true;
    current_second_ = second;
    history_start_second_ = second;
  }
  if (sample.tokens.has_value() && token_ring_ == nullptr) token_ring_ = ZeroedRing(slots_);
  Source& source = it->second;
  const int64_t tokens = sample.tokens.value_or(0);
  current_request_millis_ += sample.request_millis - source.request_millis;
  current_tokens_ += tokens - source.tokens;
  source.request_millis = sample.request_millis;
  source.tokens = tokens;
  source.last_second = current_second_;
  next_expiry_second_ = std::min(next_expiry_second_, current_second_ + staleness_seconds_);
  return absl::OkStatus();
}

WindowLoad LoadWindow::Average(absl::Time now) {
  if (!started_) return WindowLoad{};
  AdvanceTo(absl::ToUnixSeconds(now));
  return Sum(current_second_, /*with_current=*/false);
}

WindowLoad LoadWindow::AverageWithCurrent(absl::Time now) {
  if (!started_) return WindowLoad{};
  AdvanceTo(absl::ToUnixSeconds(now));
  return Sum(current_second_, /*with_current=*/true);
}

WindowLoad LoadWindow::Sum(int64_t end_second, bool with_current) const {
  WindowLoad load;
  load.has_tokens = token_ring_ != nullptr;
  // Completed seconds counted: [first, end_second), at most a window (one fewer when the
  // second in progress takes a place), never before the first report.
  const int64_t room = with_current ? window_seconds_ - 1 : window_seconds_;
  const int64_t first = std::max(end_second - room, history_start_second_);
  const int64_t completed = end_second - first;
  load.seconds = completed + (with_current ? 1 : 0);
  if (with_current) {
    load.request_millis_sum = current_request_millis_;
    load.token_sum = current_tokens_;
  }
  if (completed <= 0) return load;
  // The ring's running totals hold every bucket up to the newest closed one. Buckets
  // older than the window's oldest are taken out (at most one once the window is full;
  // none before, as a ring holds zeros before the first observed second).
  const int64_t newest = Bucket(end_second - 1);
  const int64_t oldest = Bucket(first);
  int64_t requests = request_total_;
  int64_t tokens = token_total_;
  if (first > history_start_second_) {
    for (int64_t bucket = newest - slots_ + 1; bucket < oldest; ++bucket) {
      requests -= request_ring_[Slot(bucket)];
      if (token_ring_ != nullptr) tokens -= token_ring_[Slot(bucket)];
    }
  }
  if (bucket_seconds_ > 1) {
    // The window covers only part of its oldest bucket: count that part in proportion to
    // the closed seconds the bucket holds.
    const int64_t bucket_first = std::max(oldest * bucket_seconds_, history_start_second_);
    const int64_t bucket_last = std::min((oldest + 1) * bucket_seconds_, end_second) - 1;
    const int64_t held = bucket_last - bucket_first + 1;
    const int64_t covered = bucket_last - first + 1;
    if (held > 0 && covered < held) {
      const size_t slot = Slot(oldest);
      requests -= static_cast<int64_t>(static_cast<__int128>(request_ring_[slot]) *
                                       (held - covered) / held);
      if (token_ring_ != nullptr) {
        tokens -= static_cast<int64_t>(static_cast<__int128>(token_ring_[slot]) *
                                       (held - covered) / held);
      }
    }
  }
  load.request_millis_sum += requests;
  load.token_sum += tokens;
  return load;
}

void LoadWindow::Resize(int32_t window_seconds) {
  const int32_t new_window = std::max(window_seconds, 1);
  if (new_window == window_seconds_) return;
  // The most recent completed seconds, one value each (an even share of its bucket when
  // the window is bucketed), then closed again into the new buckets.
  std::vector<std::pair<int64_t, int64_t>> seconds;  // (requests, tokens) per second
  int64_t keep = 0;
  if (started_) {
    keep = std::min<int64_t>(
        {current_second_ - history_start_second_, window_seconds_, new_window});
    for (int64_t s = current_second_ - keep; s < current_second_; ++s) {
      const int64_t bucket = Bucket(s);
      const int64_t bucket_first = std::max(bucket * bucket_seconds_, history_start_second_);
      const int64_t bucket_last = std::min((bucket + 1) * bucket_seconds_, current_second_) - 1;
      const int64_t held = std::max<int64_t>(1, bucket_last - bucket_first + 1);
      const size_t slot = Slot(bucket);
      seconds.emplace_back(request_ring_[slot] / held,
                           token_ring_ != nullptr ? token_ring_[slot] / held : 0);
    }
  }
  const bool had_tokens = token_ring_ != nullptr;
  window_seconds_ = new_window;
  bucket_seconds_ = BucketSecondsFor(new_window);
  AllocateRings();
  if (had_tokens) token_ring_ = ZeroedRing(slots_);
  // Replayed below into the new ring.
  if (!started_) return;
  history_start_second_ = current_second_ - keep;
  for (int64_t i = 0; i < keep; ++i) {
    const int64_t s = current_second_ - keep + i;
    const size_t slot = Slot(Bucket(s));
    request_ring_[slot] += seconds[i].first;
    request_total_ += seconds[i].first;
    if (token_ring_ != nullptr) {
      token_ring_[slot] += seconds[i].second;
      token_total_ += seconds[i].second;
    }
  }
}

size_t LoadWindow::MemoryBytes() const {
  size_t bytes = sizeof(*this) + sizeof(int64_t) * slots_;
  if (token_ring_ != nullptr) bytes += sizeof(int64_t) * slots_;
  bytes += sources_.capacity() * (sizeof(std::pair<std::string, Source>) + 1);
  for (const auto& [id, source] : sources_) {
    if (id.capacity() > 15) bytes += id.capacity() + 1;  // beyond the small-string buffer
  }
  return bytes;
}

void LoadWindow::CloseCurrentSecond() {
  const size_t slot = Slot(Bucket(current_second_));
  // The first second closed into a bucket reuses a slot that held an older bucket.
  const bool fresh = current_second_ % bucket_seconds_ == 0 ||
                     current_second_ == history_start_second_;
  if (fresh) {
    request_total_ -= request_ring_[slot];
    request_ring_[slot] = 0;
    if (token_ring_ != nullptr) {
      token_total_ -= token_ring_[slot];
      token_ring_[slot] = 0;
    }
  }
  request_ring_[slot] += current_request_millis_;
  request_total_ += current_request_millis_;
  if (token_ring_ != nullptr) {
    token_ring_[slot] += current_tokens_;
    token_total_ += current_tokens_;
  }
  if (!sources_.empty()) ++live_seconds_;
}

void LoadWindow::AdvanceTo(int64_t second) {
  while (current_second_ < second) {
    if (sources_.empty() && second - current_second_ >= window_seconds_) {
      // Nothing counts any more and every held second falls out of the window.
      std::fill_n(request_ring_.get(), slots_, 0);
      if (token_ring_ != nullptr) std::fill_n(token_ring_.get(), slots_, 0);
      request_total_ = 0;
      token_total_ = 0;
      current_second_ = second;
      return;
    }
    CloseCurrentSecond();
    ++current_second_;
    ExpireSourcesAt(current_second_);
  }
}

void LoadWindow::ExpireSourcesAt(int64_t second) {
  if (second < next_expiry_second_) return;
  next_expiry_second_ = kNever;
  for (auto it = sources_.begin(); it != sources_.end();) {
    const int64_t expiry = it->second.last_second + staleness_seconds_;
    if (expiry <= second) {
      current_request_millis_ -= it->second.request_millis;
      current_tokens_ -= it->second.tokens;
      sources_.erase(it++);
    } else {
      next_expiry_second_ = std::min(next_expiry_second_, expiry);
      ++it;
    }
  }
}

}  // namespace chainscale
