// RestGateway: Baseten's management REST calls on the control plane's HTTP port, answered
// by the same Management core as the gRPC service:
//   PATCH  /v1/chains/{chain_id}/environments/{env_name}/chainlet_settings/autoscaling_settings
//   GET    /v1/chains/{chain_id}/environments/{env_name}
//   GET    /v1/chains/{chain_id}/environments
//   POST   /v1/chains/{chain_id}/environments
//   GET    /v1/chains/{chain_id}, DELETE /v1/chains/{chain_id}, GET /v1/chains
// JSON maps to and from the protos (Baseten's bodies are in baseten_rest.proto; parsing
// and error bodies in rest_json.h). Errors are JSON with an HTTP code that fits the gRPC
// code. OPTIONS answers 204 with Allow; other methods a path does not serve get 405 with
// Allow; HEAD is answered as GET.
//
// Admission, before a body is read: the size limit (413), the key (401), and two rate
// limits (429 with Retry-After): requests per key, whatever the spelling of the header,
// and failed keys per client address, so guessing keys is slow. Both keep a bounded
// number of buckets (rate_limit.h).
//
// Handle() is the whole gateway as a pure function of the request, so it is tested and
// fuzzed without sockets; Register() mounts it on an HttpServer, where Admit runs once
// the headers are in and Respond once the body is.
#ifndef CHAINSCALE_CONTROL_PLANE_REST_GATEWAY_H_
#define CHAINSCALE_CONTROL_PLANE_REST_GATEWAY_H_

#include <atomic>
#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "common/auth.h"
#include "common/clock.h"
#include "common/http_server.h"
#include "common/metrics.h"
#include "common/rate_limit.h"
#include "control_plane/management.h"
#include "control_plane/rest_json.h"

namespace chainscale {

struct RestRequest {
  std::string method;         // GET, POST, PATCH, ...
  std::string path;           // without the query string
  std::string authorization;  // the Authorization header, possibly empty
  std::string body;
  std::string client_address;  // whose failed keys count together; empty: one client
};

struct RestResponse {
  int status = 200;
  std::string body;  // JSON
  std::map<std::string, std::string> headers;
};

struct RestGatewayOptions {
  ApiKeys api_keys;  // empty: no authentication (--insecure)
  double requests_per_second_per_key = 100;  // 0 disables the limit; burst: one second's
  size_t max_body_bytes = 1 << 20;
  // Failed keys per client address: this many at once, then one per 1 / rate seconds.
  double failed_keys_burst = 10;
  double failed_keys_per_second = 1;
  // Buckets kept for each limit (keys, client addresses); see rate_limit.h.
  size_t max_tracked = 10'000;
};

class RestGateway {
 public:
  // `management` is null until the store is open (then: 503). `metrics` and `clock` must
  // outlive the gateway.
  RestGateway(RestGatewayOptions options, Metrics* metrics, const Clock& clock);

  void SetManagement(Management* management) { management_.store(management); }

  // The whole gateway: Admit, then Respond.
  RestResponse Handle(const RestRequest& request);

  // What can be decided before the body is read (its declared size, the key, the rate
  // limits): the refusal, or nothing when the request may go on. Counts against the
  // limits.
  std::optional<RestResponse> Admit(const RestRequest& head);
  // The answer to an admitted request.
  RestResponse Respond(const RestRequest& request);

  // Routes every /v1/ path of `server` here.
  void Register(HttpServer& server);

  // Buckets held by the per-key limit and by the failed-key throttle.
  size_t tracked_keys() const { return requests_.size(); }
  size_t tracked_clients() const { return failures_.size(); }

 private:
  std::optional<RestResponse> Refusal(const RestRequest& head);
  RestResponse Route(const RestRequest& request, Management& management);
  RestResponse Finish(const RestRequest& request, RestResponse response, absl::Time start);

  const RestGatewayOptions options_;
  Metrics* const metrics_;
  std::atomic<Management*> management_{nullptr};
  RateLimiter requests_;
  RateLimiter failures_;
};

// An error as a REST answer: the JSON body of ErrorJson (with "retry_after" in seconds
// beside "error" when given) and the HTTP status that fits.
RestResponse ErrorResponse(const absl::Status& status,
                           std::optional<double> retry_after = std::nullopt);

// A request on the HTTP port as the gateway takes it, and the gateway's answer as HTTP; for
// other routes of the port admitted by the gateway (the console's simulations).
RestRequest RestRequestFrom(const HttpRequest& request);
HttpResponse HttpResponseFrom(RestResponse response);

}  // namespace chainscale

#endif  // CHAINSCALE_CONTROL_PLANE_REST_GATEWAY_H_
