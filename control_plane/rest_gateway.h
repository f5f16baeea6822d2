// RestGateway: Baseten's management REST calls on the control plane's HTTP port, answered
// by the same Management core as the gRPC service:
//   PATCH  /v1/chains/{chain_id}/environments/{env_name}/chainlet_settings/autoscaling_settings
//   GET    /v1/chains/{chain_id}/environments/{env_name}
//   GET    /v1/chains/{chain_id}/environments
//   POST   /v1/chains/{chain_id}/environments
//   GET    /v1/chains/{chain_id}, DELETE /v1/chains/{chain_id}, GET /v1/chains
// JSON maps to and from the protos (Baseten's bodies are in baseten_rest.proto) with
// protobuf's JSON mapping (proto field names; JSON null means "not passed"; unknown fields
// are rejected). Errors are JSON with an HTTP code
// that fits the gRPC code. Requests are rate limited per key.
//
// Handle() is the whole gateway as a pure function of the request, so it is tested and
// fuzzed without sockets; Register() mounts it on an httplib server.
#ifndef CHAINSCALE_CONTROL_PLANE_REST_GATEWAY_H_
#define CHAINSCALE_CONTROL_PLANE_REST_GATEWAY_H_

#include <atomic>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include <httplib.h>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/auth.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "control_plane/management.h"

namespace chainscale {

struct RestRequest {
  std::string method;         // GET, POST, PATCH, ...
  std::string path;           // without the query string
  std::string authorization;  // the Authorization header, possibly empty
  std::string body;
};

struct RestResponse {
  int status = 200;
  std::string body;  // JSON
  std::map<std::string, std::string> headers;
};

struct RestGatewayOptions {
  ApiKeys api_keys;  // empty: no authentication (--insecure)
  double requests_per_second_per_key = 100;  // 0 disables the limit
  size_t max_body_bytes = 1 << 20;
};

// The HTTP status for a gRPC/absl code.
int HttpStatusFor(absl::StatusCode code);

class RestGateway {
 public:
  // `management` is null until the store is open (then: 503). `metrics` and `clock` must
  // outlive the gateway.
  RestGateway(RestGatewayOptions options, Metrics* metrics, const Clock& clock);

  void SetManagement(Management* management) { management_.store(management); }

  RestResponse Handle(const RestRequest& request) ABSL_LOCKS_EXCLUDED(mu_);

  // Routes every /v1/ path of `server` to Handle, and formats httplib's own errors (such
  // as 413 for a body over the limit) as JSON.
  void Register(httplib::Server& server);

 private:
  // Takes one request from `key`'s bucket; the seconds until the next one is free when
  // the bucket is empty.
  std::optional<double> Throttle(const std::string& key) ABSL_LOCKS_EXCLUDED(mu_);
  RestResponse Route(const RestRequest& request, Management& management);

  const RestGatewayOptions options_;
  Metrics* const metrics_;
  const Clock& clock_;
  std::atomic<Management*> management_{nullptr};

  struct Bucket {
    double tokens = 0;
    absl::Time refilled;
  };
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
};

// The JSON error body: {"error": {"code": "...", "message": "...", "field_violations": [...]}},
// with "retry_after" (seconds) beside "error" when given.
RestResponse ErrorResponse(const absl::Status& status,
                           std::optional<double> retry_after = std::nullopt);

}  // namespace chainscale

#endif  // CHAINSCALE_CONTROL_PLANE_REST_GATEWAY_H_
