// Checks the `authorization` metadata of a gRPC call against a key set. Services call it
// first thing in every method that needs a key.
#ifndef CHAINSCALE_COMMON_GRPC_AUTH_H_
#define CHAINSCALE_COMMON_GRPC_AUTH_H_

#include <grpcpp/server_context.h>

#include "absl/status/status.h"
#include "common/auth.h"

namespace chainscale {

// OK when `keys` is empty (the process runs --insecure) or the call carries a known key.
absl::Status AuthorizeCall(const ApiKeys& keys, const grpc::ServerContextBase& context);

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_GRPC_AUTH_H_
