// DecisionListing: the current decisions a watch sends first, read a page at a time as
// the stream takes them, so a watcher never holds more than one page of them. The agent's
// watch reads its decision loop; the control plane's decision feed reads its store.
// Not thread-safe: the stream guards it with its mutex.
#ifndef CHAINSCALE_COMMON_DECISION_LISTING_H_
#define CHAINSCALE_COMMON_DECISION_LISTING_H_

#include <cstddef>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "chainscale/v1/agent.pb.h"

namespace chainscale {

class DecisionListing {
 public:
  // Reads the page that follows `page_token` (empty: the first page); an empty
  // next_page_token ends the listing.
  using PageReader = std::function<absl::StatusOr<v1::ListScalingDecisionsResponse>(
      const std::string& page_token)>;

  // Lists what `read_page` reads, about `expected` decisions (an estimate for waiting()).
  void Start(size_t expected, PageReader read_page);
  // Drops what is left of the listing.
  void Stop();

  // The next listed decision, reading a page when one is used up; nullptr once the
  // listing is done (or a page could not be read: `status` then says why). It stays
  // valid until the next call.
  const v1::ScalingDecision* Next();

  bool active() const { return read_page_ != nullptr; }
  // What remains of the estimate.
  size_t left() const { return left_; }
  // The error of the last page read, or OK.
  const absl::Status& status() const { return status_; }

 private:
  PageReader read_page_;  // empty once the listing is done
  v1::ListScalingDecisionsResponse page_;
  int position_ = 0;
  size_t left_ = 0;
  absl::Status status_;
};

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_DECISION_LISTING_H_
