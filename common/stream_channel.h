// Client channels for chainscale's long-lived streams (the agent's Sync stream to the
// control plane, its forwarding streams to peer agents): one place that sets keepalive,
// message limits and reconnect delays, and attaches a bearer token, so every stream a
// process opens behaves the same on a broken or silent network.
#ifndef CHAINSCALE_COMMON_STREAM_CHANNEL_H_
#define CHAINSCALE_COMMON_STREAM_CHANNEL_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/security/credentials.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "common/backoff.h"

namespace chainscale {

struct StreamChannelOptions {
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  // Largest message either way (DESIGN §14: 4 MiB unless a stream says less).
  size_t max_message_bytes = 4 << 20;
  // gRPC's own delays between connection attempts (initial and max; gRPC applies its own
  // multiplier and jitter). Unset keeps gRPC's defaults (1 s up to 120 s).
  std::optional<BackoffOptions> reconnect;
  // The channel's connections are its own (GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL): not
  // shared with other channels to the same target, nor their reconnect delays, so a
  // client that opens a new channel for each attempt gets a new connection each time.
  bool own_connections = false;
};

// A channel to `target` with keepalive (common/keepalive.h) and the options' limits.
std::shared_ptr<grpc::Channel> MakeStreamChannel(const std::string& target,
                                                 const StreamChannelOptions& options);

// Adds "authorization: Bearer <token>" to a call; nothing when `token` is empty.
void AddBearerToken(grpc::ClientContext& context, absl::string_view token);

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_STREAM_CHANNEL_H_
