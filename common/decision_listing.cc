#include "common/decision_listing.h"

#include <utility>

namespace chainscale {

void DecisionListing::Start(size_t expected, PageReader read_page) {
  read_page_ = std::move(read_page);
  page_.Clear();
  position_ = 0;
  left_ = expected;
  status_ = absl::OkStatus();
}

void DecisionListing::Stop() {
  read_page_ = nullptr;
  page_.Clear();
  position_ = 0;
  left_ = 0;
}

const v1::ScalingDecision* DecisionListing::Next() {
  while (read_page_ != nullptr) {
    if (position_ < page_.decisions_size()) {
      if (left_ > 0) --left_;
      return &page_.decisions(position_++);
    }
    if (position_ > 0 && page_.next_page_token().empty()) break;  // the last page
    absl::StatusOr<v1::ListScalingDecisionsResponse> next = read_page_(page_.next_page_token());
    if (!next.ok()) {
      status_ = next.status();
      break;
    }
    if (next->decisions().empty()) break;
    page_ = *std::move(next);
    position_ = 0;
  }
  Stop();
  return nullptr;
}

}  // namespace chainscale
