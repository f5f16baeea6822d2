#include "control_plane/rest_json.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/error_text.h"
#include "common/field_violations.h"
#include "common/json_print.h"
#include "common/utf8.h"

namespace chainscale {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

// What one (non-repeated) value of `field` must be in JSON; null when it is acceptable.
const char* TypeProblem(const FieldDescriptor& field, const Value& value) {
  switch (field.cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_FLOAT:
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return value.has_number_value() ? nullptr : "a JSON number";
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT64:
      // The JSON mapping prints 64-bit integers as strings, so both are accepted.
      return value.has_number_value() || value.has_string_value() ? nullptr
                                                                  : "a JSON number";
    case FieldDescriptor::CPPTYPE_BOOL:
      return value.has_bool_value() ? nullptr : "true or false";
    case FieldDescriptor::CPPTYPE_STRING:
      return value.has_string_value() ? nullptr : "a JSON string";
    case FieldDescriptor::CPPTYPE_ENUM:
      return value.has_string_value() || value.has_number_value() ? nullptr
                                                                  : "a name (a JSON string)";
    case FieldDescriptor::CPPTYPE_MESSAGE:
      // Well-known types (timestamps, structs, wrappers) have JSON forms of their own;
      // protobuf's parser checks those.
      if (absl::StartsWith(field.message_type()->full_name(), "google.protobuf.")) return nullptr;
      return value.has_struct_value() ? nullptr : "a JSON object";
  }
  return nullptr;
}

const FieldDescriptor* FindField(const Descriptor& descriptor, const std::string& key) {
  for (int i = 0; i < descriptor.field_count(); ++i) {
    const FieldDescriptor* field = descriptor.field(i);
    if (field->name() == key || field->json_name() == key) return field;
  }
  return nullptr;
}

void CheckObject(const Struct& object, const Descriptor& descriptor, const std::string& prefix,
                 std::vector<FieldViolation>* out);

void CheckValue(const FieldDescriptor& field, const Value& value, const std::string& path,
                std::vector<FieldViolation>* out) {
  if (value.has_null_value()) return;  // "not passed"
  if (const char* expected = TypeProblem(field, value)) {
    out->push_back({path, absl::StrCat("must be ", expected, ", not ", JsonKindName(value))});
    return;
  }
  if (field.cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && value.has_struct_value()) {
    CheckObject(value.struct_value(), *field.message_type(), path + ".", out);
  }
}

// Walks the JSON along the message's descriptor. Depth is bounded by the descriptor's own
// nesting (only known message fields are entered), and protobuf's JSON parser has already
// refused deeper documents.
void CheckObject(const Struct& object, const Descriptor& descriptor, const std::string& prefix,
                 std::vector<FieldViolation>* out) {
  for (const auto& [key, value] : object.fields()) {
    const FieldDescriptor* field = FindField(descriptor, key);
    if (field == nullptr || field->is_map()) continue;  // protobuf reports unknown fields
    const std::string path = prefix + field->name();
    if (!field->is_repeated()) {
      CheckValue(*field, value, path, out);
      continue;
    }
    if (value.has_null_value()) continue;
    if (!value.has_list_value()) {
      out->push_back({path, absl::StrCat("must be a JSON array, not ", JsonKindName(value))});
      continue;
    }
    const ListValue& list = value.list_value();
    for (int i = 0; i < list.values_size(); ++i) {
      CheckValue(*field, list.values(i), absl::StrCat(path, "[", i, "]"), out);
    }
  }
}

}  // namespace

absl::Status ParseJsonBody(absl::string_view body, google::protobuf::Message* message) {
  if (absl::StripAsciiWhitespace(body).empty()) {
    return absl::InvalidArgumentError("the request body is empty; send a JSON object");
  }
  // First the document as plain JSON, to see the type of every value as sent.
  Value document;
  if (auto parsed = google::protobuf::util::JsonStringToMessage(
          google::protobuf::StringPiece(body.data(), body.size()), &document); !parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("the request body is not valid JSON: ",
                                                   parsed.message().as_string()));
  }
  if (!document.has_struct_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the request body must be a JSON object, not ", JsonKindName(document)));
  }
  std::vector<FieldViolation> violations;
  CheckObject(document.struct_value(), *message->GetDescriptor(), "", &violations);
  if (!violations.empty()) return InvalidArgumentWithViolations(violations);
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  if (auto parsed = google::protobuf::util::JsonStringToMessage(
          google::protobuf::StringPiece(body.data(), body.size()), message, options);
      !parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the request body is not valid: ", parsed.message().as_string()));
  }
  return absl::OkStatus();
}

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

std::string ErrorJson(const absl::Status& original, std::optional<double> retry_after) {
  const absl::Status status = BoundedStatus(original);
  Struct root;
  Struct* error = (*root.mutable_fields())["error"].mutable_struct_value();
  (*error->mutable_fields())["code"].set_string_value(absl::StatusCodeToString(status.code()));
  (*error->mutable_fields())["message"].set_string_value(ValidUtf8(status.message()));
  const std::vector<FieldViolation> violations = FieldViolationsOf(status);
  if (!violations.empty()) {
    auto* list = (*error->mutable_fields())["field_violations"].mutable_list_value();
    for (const FieldViolation& v : violations) {
      auto* fields = list->add_values()->mutable_struct_value()->mutable_fields();
      (*fields)["field"].set_string_value(ValidUtf8(v.field));
      (*fields)["description"].set_string_value(ValidUtf8(v.description));
    }
  }
  if (retry_after.has_value()) (*root.mutable_fields())["retry_after"].set_number_value(*retry_after);
  std::string out;
  if (!PrintJson(root, google::protobuf::util::JsonPrintOptions(), &out).ok()) {
    out = R"({"error":{"code":"INTERNAL","message":"cannot print the error as JSON"}})";
  }
  out.push_back('\n');
  return out;
}

}  // namespace chainscale
