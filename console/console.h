// Console: the web console the control plane serves on its HTTP port (DESIGN §13), as a
// pure function of the request so it is tested without sockets:
//   GET  /                            the page; GET /console/NAME its assets
//   GET  /v1/console/session          {"auth": "api_key" or "none"}: whether a key is
//                                     wanted, so the page asks for one before its first
//                                     call instead of after a failed one
//   POST /v1/simulations              a SimulationRequest, run here on the agents'
//                                     decision code; answers a SimulationResult
//   GET  /v1/simulations/scenarios    the ready-made scenarios
//   GET  /v1/console/chains/{chain_id}/environments/{env_name}/history?chainlet=NAME
//                                     the chainlet's recent stored decisions, for the
//                                     chart (a ChainletDecisionHistory)
// The page reads chains, environments, settings and stored decisions, and writes
// settings, through the REST gateway (Baseten's paths). JSON uses proto field names. The
// /v1/simulations and history calls need a management key as the REST gateway does (unless none is
// configured); errors come back as statuses for the HTTP glue to render.
#ifndef CHAINSCALE_CONSOLE_CONSOLE_H_
#define CHAINSCALE_CONSOLE_CONSOLE_H_

#include <atomic>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/auth.h"
#include "console/decision_history.h"
#include "tools/simulator/simulation_request.h"

namespace chainscale {

struct ConsoleOptions {
  ApiKeys api_keys;  // empty: no key needed (--insecure)
  SimulationLimits simulation_limits;
  // Simulations running at once; more are answered RESOURCE_EXHAUSTED.
  int max_concurrent_simulations = 2;
  size_t max_body_bytes = 1 << 20;
  // The chart history; null: the history path answers NOT_FOUND. Must outlive the console.
  const DecisionHistory* history = nullptr;
};

// OK when the chainlet exists; NOT_FOUND (saying which name is unknown) otherwise.
using ChainletLookup = std::function<absl::Status(
    absl::string_view chain_id, absl::string_view env_name, absl::string_view chainlet_name)>;

struct ConsoleRequest {
  std::string method;
  std::string path;  // without the query string
  std::string query;  // after '?', not decoded
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

  // The paths Handle answers, for the HTTP glue to route here: each exact or a prefix,
  // with the one method it serves (HEAD goes where GET does) and whether it needs a key
  // (then the glue admits it as the REST gateway admits its calls, limits included).
  struct Path {
    const char* path;
    bool prefix;
    const char* method;
    bool needs_key;
  };
  static const std::vector<Path>& Paths();

  // Admit, then Respond.
  ConsoleResponse Handle(const ConsoleRequest& request);

  // What is decided before a body is read (the request's body may still be empty): 405
  // with Allow for a wrong method, 413 for a declared body over the limit,
  // UNAUTHENTICATED (with WWW-Authenticate) without a good key on the calls that need
  // one. Nothing when the request may go on.
  std::optional<ConsoleResponse> Admit(const ConsoleRequest& head) const;
  // The answer to an admitted request, or an error: NOT_FOUND, INVALID_ARGUMENT (with
  // field violations), RESOURCE_EXHAUSTED (too many simulations at once).
  ConsoleResponse Respond(const ConsoleRequest& request);

  // Where the history call checks that a chainlet exists; until it is set (the store is
  // still opening) that call answers UNAVAILABLE.
  void SetChainletLookup(ChainletLookup lookup) ABSL_LOCKS_EXCLUDED(lookup_mu_);

 private:
  absl::StatusOr<ConsoleResponse> Simulate(const ConsoleRequest& request);
  absl::StatusOr<ConsoleResponse> History(const ConsoleRequest& request) const;

  const ConsoleOptions options_;
  std::atomic<int> running_simulations_{0};
  mutable absl::Mutex lookup_mu_;
  ChainletLookup lookup_ ABSL_GUARDED_BY(lookup_mu_);
};

}  // namespace chainscale

#endif  // CHAINSCALE_CONSOLE_CONSOLE_H_
