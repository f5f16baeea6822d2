#include "agent/watch_backlog.h"

#include <utility>

namespace chainscale {

void WatchBacklog::StartListing(size_t expected, PageReader read_page) {
  listing_.Start(expected, std::move(read_page));
}

bool WatchBacklog::Add(DecisionBatchPtr batch, size_t max_waiting) {
  if (batch == nullptr || batch->decisions.empty()) return true;
  if (waiting() + batch->decisions.size() > max_waiting) {
    batches_.clear();
    position_ = 0;
    waiting_ = 0;
    listing_.Stop();
    return false;
  }
  waiting_ += batch->decisions.size();
  batches_.push_back(std::move(batch));
  return true;
}

const v1::ScalingDecision* WatchBacklog::Next() {
  if (const v1::ScalingDecision* listed = listing_.Next()) return listed;
  while (!batches_.empty()) {
    const std::vector<v1::ScalingDecision>& decisions = batches_.front()->decisions;
    while (position_ < decisions.size()) {
      const v1::ScalingDecision& d = decisions[position_++];
      --waiting_;
      if (filter_.Matches(d)) {
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
