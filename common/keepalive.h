// Keepalive for every long-lived gRPC connection of chainscale (DESIGN §5): a half-open
// connection (a peer stopped or cut off without a FIN) is detected within about
// kKeepaliveTime + kKeepaliveTimeout instead of never, on both sides.
#ifndef CHAINSCALE_COMMON_KEEPALIVE_H_
#define CHAINSCALE_COMMON_KEEPALIVE_H_

#include <grpcpp/server_builder.h>
#include <grpcpp/support/channel_arguments.h>

namespace chainscale {

inline constexpr int kKeepaliveTimeMs = 10'000;
inline constexpr int kKeepaliveTimeoutMs = 5'000;

// Pings peers every 10 s and gives up on them after 5 s without an answer, and accepts
// clients' pings at that rate even without calls in flight.
void ApplyServerKeepalive(grpc::ServerBuilder& builder);

// The same for a client channel.
void ApplyChannelKeepalive(grpc::ChannelArguments& args);

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_KEEPALIVE_H_
