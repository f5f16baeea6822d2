#include "agent/watch_backlog.h"

#include <utility>

namespace chainscale {

void WatchBacklog::StartListing(size_t expected, PageReader read_page) {
  read_page_ = std::move(read_page);
  page_.Clear();
  page_position_ = 0;
  listing_left_ = expected;
}

bool WatchBacklog::Add(DecisionBatchPtr batch, size_t max_waiting) {
  if (batch == nullptr || batch->decisions.empty()) return true;
  if (waiting() + batch->decisions.size() > max_waiting) {
    batches_.clear();
    position_ = 0;
    waiting_ = 0;
    EndListing();
    return false;
  }
  waiting_ += batch->decisions.size();
  batches_.push_back(std::move(batch));
  return true;
}

void WatchBacklog::EndListing() {
  read_page_ = nullptr;
  page_.Clear();
  page_position_ = 0;
  listing_left_ = 0;
}

const v1::ScalingDecision* WatchBacklog::NextListed() {
  while (read_page_ != nullptr) {
    if (page_position_ < page_.decisions_size()) {
      if (listing_left_ > 0) --listing_left_;
      return &page_.decisions(page_position_++);
    }
    if (page_position_ > 0 && page_.next_page_token().empty()) break;  // the last page
    absl::StatusOr<v1::ListScalingDecisionsResponse> next = read_page_(page_.next_page_token());
    if (!next.ok() || next->decisions().empty()) break;
    page_ = *std::move(next);
    page_position_ = 0;
  }
  EndListing();
  return nullptr;
}

const v1::ScalingDecision* WatchBacklog::Next() {
  if (const v1::ScalingDecision* listed = NextListed()) return listed;
  while (!batches_.empty()) {
    const std::vector<v1::ScalingDecision>& decisions = batches_.front()->decisions;
    while (position_ < decisions.size()) {
      const v1::ScalingDecision& d = decisions[position_++];
      --waiting_;
      if (Matches(d)) {
        sending_ = batches_.front();
        return &d;
      }
    }
    batches_.pop_front();
    position_ = 0;
  }
  sending_.reset();
  return nullptr;
}

}  // namespace chainscale
