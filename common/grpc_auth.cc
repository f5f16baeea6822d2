#include "common/grpc_auth.h"

namespace chainscale {

absl::Status AuthorizeCall(const ApiKeys& keys, const grpc::ServerContextBase& context) {
  if (keys.empty()) return absl::OkStatus();
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return keys.Check("");
  return keys.Check(absl::string_view(it->second.data(), it->second.size()));
}

}  // namespace chainscale
