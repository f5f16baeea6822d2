#include "common/grpc_status.h"

#include <optional>
#include <string>

#include "common/error_text.h"
#include "common/field_violations.h"
#include "google/rpc/status.pb.h"

namespace chainscale {

grpc::Status ToGrpcStatus(const absl::Status& original) {
  if (original.ok()) return grpc::Status::OK;
  const absl::Status status = BoundedStatus(original);
  const auto code = static_cast<grpc::StatusCode>(status.code());
  const std::string message(status.message());
  auto bad_request = status.GetPayload(kBadRequestTypeUrl);
  if (!bad_request.has_value()) return grpc::Status(code, message);
  google::rpc::Status details;
  details.set_code(static_cast<int32_t>(status.code()));
  details.set_message(message);
  auto* any = details.add_details();
  any->set_type_url(std::string(kBadRequestTypeUrl));
  any->set_value(std::string(*bad_request));
  return grpc::Status(code, message, details.SerializeAsString());
}

}  // namespace chainscale
