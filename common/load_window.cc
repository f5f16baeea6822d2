#include "common/load_window.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"

namespace chainscale {
namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

std::unique_ptr<int64_t[]> ZeroedRing(int32_t capacity) {
  return std::unique_ptr<int64_t[]>(new int64_t[capacity]());
}

}  // namespace

double WindowLoad::MeanRequests() const {
  return seconds == 0 ? 0.0 : static_cast<double>(request_millis_sum) / 1000.0 / seconds;
}

double WindowLoad::MeanTokens() const {
  return seconds == 0 ? 0.0 : static_cast<double>(token_sum) / seconds;
}

LoadWindow::LoadWindow(int32_t window_seconds, int32_t staleness_seconds,
                       int32_t max_sources)
    : capacity_(std::max(window_seconds, 1)),
      staleness_seconds_(std::max(staleness_seconds, 1)),
      max_sources_(std::clamp(max_sources, 1, kDefaultMaxSources)),
      request_ring_(ZeroedRing(capacity_)),
      next_expiry_second_(kNever) {}

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
  if (!started_) {
    started_ = true;
    current_second_ = second;
    history_start_second_ = second;
  } else {
    AdvanceTo(second);
  }
  auto it = sources_.find(source_id);
  if (it == sources_.end()) {
    if (static_cast<int32_t>(sources_.size()) >= max_sources_) {
      return absl::ResourceExhaustedError(
          absl::StrCat("more than ", max_sources_, " sources report for one chainlet"));
    }
    it = sources_.try_emplace(std::string(source_id)).first;
  }
  if (sample.tokens.has_value() && token_ring_ == nullptr) {
    token_ring_ = ZeroedRing(capacity_);
  }
  Source& source = it->second;
  const int64_t tokens = sample.tokens.value_or(0);
  AddToCurrent(sample.request_millis - source.request_millis, tokens - source.tokens);
  source.request_millis = sample.request_millis;
  source.tokens = tokens;
  source.last_second = current_second_;
  next_expiry_second_ = std::min(next_expiry_second_, current_second_ + staleness_seconds_);
  return absl::OkStatus();
}

WindowLoad LoadWindow::Average(absl::Time now) {
  if (!started_) return WindowLoad{};
  AdvanceTo(absl::ToUnixSeconds(now));
  WindowLoad load;
  load.request_millis_sum = request_sum_;
  load.token_sum = token_sum_;
  load.seconds = std::min<int64_t>(capacity_, current_second_ - history_start_second_ + 1);
  load.has_tokens = token_ring_ != nullptr;
  return load;
}

void LoadWindow::Resize(int32_t window_seconds) {
  const int32_t new_capacity = std::max(window_seconds, 1);
  if (new_capacity == capacity_) return;
  auto requests = ZeroedRing(new_capacity);
  auto tokens = token_ring_ != nullptr ? ZeroedRing(new_capacity) : nullptr;
  request_sum_ = 0;
  token_sum_ = 0;
  if (started_) {
    const int64_t held = current_second_ - history_start_second_ + 1;
    const int64_t keep = std::min<int64_t>({held, capacity_, new_capacity});
    for (int64_t s = current_second_ - keep + 1; s <= current_second_; ++s) {
      const size_t from = Slot(s);
      const size_t to = static_cast<size_t>(((s % new_capacity) + new_capacity) % new_capacity);
      requests[to] = request_ring_[from];
      request_sum_ += requests[to];
      if (tokens != nullptr) {
        tokens[to] = token_ring_[from];
        token_sum_ += tokens[to];
      }
    }
    history_start_second_ = current_second_ - keep + 1;
  }
  capacity_ = new_capacity;
  request_ring_ = std::move(requests);
  token_ring_ = std::move(tokens);
}

size_t LoadWindow::MemoryBytes() const {
  size_t bytes = sizeof(*this) + sizeof(int64_t) * capacity_;
  if (token_ring_ != nullptr) bytes += sizeof(int64_t) * capacity_;
  bytes += sources_.capacity() * (sizeof(std::pair<std::string, Source>) + 1);
  for (const auto& [id, source] : sources_) {
    if (id.capacity() > 15) bytes += id.capacity() + 1;  // beyond the small-string buffer
  }
  return bytes;
}

void LoadWindow::AdvanceTo(int64_t second) {
  while (current_second_ < second) {
    if (sources_.empty() && second - current_second_ >= capacity_) {
      // Nothing counts any more and every held second falls out of the window.
      std::fill_n(request_ring_.get(), capacity_, 0);
      if (token_ring_ != nullptr) std::fill_n(token_ring_.get(), capacity_, 0);
      request_sum_ = 0;
      token_sum_ = 0;
      current_second_ = second;
      return;
    }
    ++current_second_;
    ExpireSourcesAt(current_second_);
    const size_t slot = Slot(current_second_);
    request_sum_ += current_request_millis_ - request_ring_[slot];
    request_ring_[slot] = current_request_millis_;
    if (token_ring_ != nullptr) {
      token_sum_ += current_tokens_ - token_ring_[slot];
      token_ring_[slot] = current_tokens_;
    }
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

void LoadWindow::AddToCurrent(int64_t request_millis_delta, int64_t token_delta) {
  current_request_millis_ += request_millis_delta;
  const size_t slot = Slot(current_second_);
  request_ring_[slot] += request_millis_delta;
  request_sum_ += request_millis_delta;
  if (token_ring_ != nullptr) {
    current_tokens_ += token_delta;
    token_ring_[slot] += token_delta;
    token_sum_ += token_delta;
  }
}

}  // namespace chainscale
