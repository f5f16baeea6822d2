// Console: the web console the control plane serves on its HTTP port (DESIGN §13), as a
// pure function of the request so it is tested without sockets:
//   GET  /                                   the page; GET /console/NAME its assets
//   GET  /v1/console/session                 {"auth", "authenticated"}: whether a key is
//                                            wanted and the one sent is good (always 200)
//   GET  /v1/console/chains[?page_token=]    ListChains, as JSON
//   GET  /v1/console/chains/{chain_id}       GetChain
//   GET  /v1/console/chains/{chain_id}/environments/{env_name}
//                                            GetChainEnvironment: settings, revisions and
//                                            the stored decisions
//   POST /v1/simulations                     a SimulationRequest, run here on the agents'
//                                            decision code; answers a SimulationResult
//   GET  /v1/simulations/scenarios           the ready-made scenarios
// Writes go through Baseten's PATCH on the REST gateway. JSON uses proto field names.
// The /v1/ calls need a management key as the REST gateway does (unless none is
// configured); errors come back as statuses for the HTTP glue to render.
#ifndef CHAINSCALE_CONSOLE_CONSOLE_H_
#define CHAINSCALE_CONSOLE_CONSOLE_H_

#include <atomic>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "common/auth.h"
#include "control_plane/registry.h"
#include "tools/simulator/simulation_request.h"

namespace chainscale {

struct ConsoleOptions {
  ApiKeys api_keys;  // empty: no key needed (--insecure)
  SimulationLimits simulation_limits;
  // Simulations running at once; more are answered RESOURCE_EXHAUSTED.
  int max_concurrent_simulations = 2;
  size_t max_body_bytes = 1 << 20;
};

struct ConsoleRequest {
  std::string method;
  std::string path;  // without the query string
  std::map<std::string, std::string> query;
  std::string authorization;  // the Authorization header, possibly empty
  std::string body;
};

struct ConsoleResponse {
  // Not OK: the glue renders it as the REST gateway renders errors (JSON with field
  // violations), with `http_status` when set (405 for a wrong method) and `headers`.
  absl::Status error;
  int http_status = 0;
  std::string content_type;
  std::string body;
  std::map<std::string, std::string> headers;
};

class Console {
 public:
  explicit Console(ConsoleOptions options);

  // Null until the store is open (reads then answer UNAVAILABLE); must outlive its use.
  void SetRegistry(const Registry* registry) { registry_.store(registry); }

  // True for the paths Handle answers, so the HTTP glue can route them here.
  static bool Serves(const std::string& path);

  // The answer, or an error: NOT_FOUND, UNAUTHENTICATED (with WWW-Authenticate),
  // INVALID_ARGUMENT (with field violations; 413 for a body over the limit),
  // RESOURCE_EXHAUSTED (too many simulations at once), UNAVAILABLE (store not open yet),
  // 405 with Allow for a wrong method.
  ConsoleResponse Handle(const ConsoleRequest& request);

 private:
  absl::StatusOr<ConsoleResponse> Read(const ConsoleRequest& request) const;
  absl::StatusOr<ConsoleResponse> Simulate(const ConsoleRequest& request);

  const ConsoleOptions options_;
  std::atomic<const Registry*> registry_{nullptr};
  std::atomic<int> running_simulations_{0};
};

}  // namespace chainscale

#endif  // CHAINSCALE_CONSOLE_CONSOLE_H_
