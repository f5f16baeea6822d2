// INVALID_ARGUMENT statuses that name each offending field, carried as a
// google.rpc.BadRequest payload on absl::Status so the gRPC and REST boundaries can hand
// every violation to the client.
#ifndef CHAINSCALE_COMMON_FIELD_VIOLATIONS_H_
#define CHAINSCALE_COMMON_FIELD_VIOLATIONS_H_

#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"

namespace chainscale {

struct FieldViolation {
  std::string field;        // path of the field, e.g. "updates[0].autoscaling_settings.min_replica"
  std::string description;  // what is wrong and what is allowed

  friend bool operator==(const FieldViolation& a, const FieldViolation& b) {
    return a.field == b.field && a.description == b.description;
  }
};

// Payload type URL under which the violations travel on an absl::Status.
inline constexpr absl::string_view kBadRequestTypeUrl =
    "type.googleapis.com/google.rpc.BadRequest";

// INVALID_ARGUMENT whose message lists every violation, with the violations attached as a
// google.rpc.BadRequest payload. `violations` must not be empty.
absl::Status InvalidArgumentWithViolations(const std::vector<FieldViolation>& violations);

// The violations attached to `status`; empty when it carries none.
std::vector<FieldViolation> FieldViolationsOf(const absl::Status& status);

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_FIELD_VIOLATIONS_H_
