// The one place where an absl::Status becomes a grpc::Status: services call this at their
// boundary so codes, messages and field violations reach clients the same way everywhere.
#ifndef CHAINSCALE_COMMON_GRPC_STATUS_H_
#define CHAINSCALE_COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace chainscale {

// Same code and message, bounded for clients with default limits (BoundedStatus: at most
// 1 KiB of message and 10 field violations, DESIGN §14). Field violations travel as a
// google.rpc.Status with a google.rpc.BadRequest detail in the `grpc-status-details-bin`
// trailer, where grpcurl and the standard client libraries find them.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_GRPC_STATUS_H_
