// Protos printed as JSON the same way every time: map entries (the keys of a Struct too)
// in key order. protobuf's MessageToJsonString prints them in the map's hash order, which
// changes from run to run, so bodies and their tests would not be reproducible.
#ifndef CHAINSCALE_COMMON_JSON_PRINT_H_
#define CHAINSCALE_COMMON_JSON_PRINT_H_

#include <google/protobuf/message.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <string>

#include "absl/status/status.h"

namespace chainscale {

// INTERNAL when protobuf cannot print `message` (a string that is not UTF-8, say).
absl::Status PrintJson(const google::protobuf::Message& message,
                       const google::protobuf::util::JsonPrintOptions& options, std::string* out);

// What a JSON value is, for error messages: "a number", "an object", "null", ...
const char* JsonKindName(const google::protobuf::Value& value);

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_JSON_PRINT_H_
