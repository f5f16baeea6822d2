// The JSON side of the REST gateway: request bodies parsed into protos, and errors printed
// as JSON. Kept apart from the gateway (no store, no sockets) so a libFuzzer target can
// drive it directly (tests/fuzz/rest_json_fuzzer.cc).
#ifndef CHAINSCALE_CONTROL_PLANE_REST_JSON_H_
#define CHAINSCALE_CONTROL_PLANE_REST_JSON_H_

#include <google/protobuf/message.h>

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace chainscale {

// Parses a request body into `message` with protobuf's JSON mapping (proto or JSON field
// names; null means "not passed"; unknown fields are rejected), and stricter about types
// than protobuf: a number field takes only a JSON number (protobuf also takes "7"), a
// boolean only true or false, a string only a string, an object only an object.
// INVALID_ARGUMENT, with a field violation naming each field of the wrong type (e.g.
// "updates[0].autoscaling_settings.max_replica"), or saying what is wrong with the JSON.
absl::Status ParseJsonBody(absl::string_view body, google::protobuf::Message* message);

// The HTTP status for a gRPC/absl code.
int HttpStatusFor(absl::StatusCode code);

// The JSON error body, bounded like every error (BoundedStatus):
// {"error": {"code": "...", "message": "...", "field_violations": [{"field",
// "description"}]}, "retry_after": seconds (when given)} and a newline. Text from requests
// that is not valid UTF-8 is replaced with U+FFFD.
std::string ErrorJson(const absl::Status& status,
                      std::optional<double> retry_after = std::nullopt);

}  // namespace chainscale

#endif  // CHAINSCALE_CONTROL_PLANE_REST_JSON_H_
