// A grpc.health.v1 Check without generated health stubs (Debian ships none for C++),
// made with raw protobuf bytes: used by chainscale-health (container health checks) and
// by tests.
#ifndef CHAINSCALE_COMMON_HEALTH_PROBE_H_
#define CHAINSCALE_COMMON_HEALTH_PROBE_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/time/time.h"

namespace chainscale {

enum class HealthState { kServing, kNotServing, kUnreachable };

// Asks `channel`'s grpc.health.v1.Health/Check about `service` ("" for the server).
HealthState ProbeHealth(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
                        absl::Duration timeout = absl::Seconds(5));

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_HEALTH_PROBE_H_
