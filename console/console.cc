#include "console/console.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/field_violations.h"
#include "common/names.h"
#include "console/console_assets.h"
#include "tools/simulator/scenarios.h"

namespace chainscale {
namespace {

constexpr absl::string_view kAssetPrefix = "/console/";
constexpr absl::string_view kSessionPath = "/v1/console/session";
constexpr absl::string_view kChainsPrefix = "/v1/console/chains/";

// The page may load its own scripts and styles only, and no other site may frame it.
const std::map<std::string, std::string>& PageHeaders() {
  static const auto* headers = new std::map<std::string, std::string>{
      {"Content-Security-Policy",
       "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'"},
      {"X-Content-Type-Options", "nosniff"},
      {"Referrer-Policy", "no-referrer"},
      {"Cache-Control", "no-cache"},
  };
  return *headers;
}

ConsoleResponse Error(absl::Status status) {
  ConsoleResponse response;
  response.error = std::move(status);
  return response;
}

ConsoleResponse MethodNotAllowed(absl::string_view allowed) {
  ConsoleResponse response = Error(
      absl::InvalidArgumentError(absl::StrCat("method not allowed here; use ", allowed)));
  response.http_status = 405;
  response.headers["Allow"] = std::string(allowed);
  return response;
}

ConsoleResponse Json(const google::protobuf::Message& message) {
  ConsoleResponse response;
  response.content_type = "application/json";
  response.body = ProtoJson(message);
  return response;
}

template <typename T>
absl::StatusOr<ConsoleResponse> JsonOr(const absl::StatusOr<T>& result) {
  if (!result.ok()) return result.status();
  return Json(*result);
}

// Decrements a counter when it goes out of scope.
class Running {
 public:
  explicit Running(std::atomic<int>& count) : count_(count) {}
  ~Running() { count_.fetch_sub(1); }

 private:
  std::atomic<int>& count_;
};

}  // namespace

Console::Console(ConsoleOptions options) : options_(std::move(options)) {}

const std::vector<Console::Path>& Console::Paths() {
  static const auto* paths = new std::vector<Path>{
      {"/", false, "GET", false},
      {"/console/", true, "GET", false},
      {"/v1/console/session", false, "GET", false},
      {"/v1/simulations", false, "POST", true},
      {"/v1/simulations/scenarios", false, "GET", true},
      {"/v1/console/chains/", true, "GET", true},
  };
  return *paths;
}

ConsoleResponse Console::Handle(const ConsoleRequest& request) {
  if (std::optional<ConsoleResponse> refused = Admit(request)) return *std::move(refused);
  return Respond(request);
}

std::optional<ConsoleResponse> Console::Admit(const ConsoleRequest& head) const {
  const std::string& path = head.path;
  const char* method = path == "/v1/simulations" ? "POST" : "GET";
  if (head.method != method && !(head.method == "HEAD" && absl::string_view(method) == "GET")) {
    return MethodNotAllowed(method);
  }
  // Pages, assets and the session need no key: they hold no data.
  if (path == "/" || absl::StartsWith(path, kAssetPrefix) || path == kSessionPath) {
    return std::nullopt;
  }
  if (head.body.size() > options_.max_body_bytes) {
    ConsoleResponse response = Error(absl::InvalidArgumentError(absl::StrCat(
        "the request body is larger than ", options_.max_body_bytes, " bytes")));
    response.http_status = 413;
    return response;
  }
  if (!options_.api_keys.empty()) {
    if (absl::Status key = options_.api_keys.Check(head.authorization); !key.ok()) {
      ConsoleResponse response = Error(key);
      response.headers["WWW-Authenticate"] = "Api-Key";
      return response;
    }
  }
  return std::nullopt;
}

ConsoleResponse Console::Respond(const ConsoleRequest& request) {
  const std::string& path = request.path;
  if (path == "/" || absl::StartsWith(path, kAssetPrefix)) {
    const ConsoleAsset* asset =
        FindConsoleAsset(path == "/" ? absl::string_view("index.html")
                                     : absl::string_view(path).substr(kAssetPrefix.size()));
    if (asset == nullptr) return Error(absl::NotFoundError(absl::StrCat("no such page: ", path)));
    ConsoleResponse response;
    response.content_type = std::string(asset->content_type);
    response.body = std::string(asset->body);
    response.headers = PageHeaders();
    return response;
  }
  if (path == kSessionPath) {
    // Whether a key is wanted, never whether one is good: that would let anyone test keys
    // past the REST gateway's limit on failed keys.
    ConsoleResponse response;
    response.content_type = "application/json";
    response.body = absl::StrCat("{\"auth\":\"", options_.api_keys.empty() ? "none" : "api_key",
                                 "\"}\n");
    return response;
  }
  if (path == "/v1/simulations/scenarios") {
    v1::ListSimulationScenariosResponse scenarios;
    for (const v1::SimulationScenario& s : SimulationScenarios()) *scenarios.add_scenarios() = s;
    return Json(scenarios);
  }
  if (path == "/v1/simulations") {
    absl::StatusOr<ConsoleResponse> response = Simulate(request);
    return response.ok() ? *std::move(response) : Error(response.status());
  }
  if (absl::StartsWith(path, kChainsPrefix)) {
    absl::StatusOr<ConsoleResponse> response = History(request);
    return response.ok() ? *std::move(response) : Error(response.status());
  }
  return Error(absl::NotFoundError(absl::StrCat("no such path: ", path)));
}

void Console::SetChainletLookup(ChainletLookup lookup) {
  absl::MutexLock lock(&lookup_mu_);
  lookup_ = std::move(lookup);
}

absl::StatusOr<ConsoleResponse> Console::History(const ConsoleRequest& request) const {
  // {chain_id}/environments/{env_name}/history
  const std::vector<absl::string_view> parts =
      absl::StrSplit(absl::string_view(request.path).substr(kChainsPrefix.size()), '/');
  if (parts.size() != 4 || parts[1] != "environments" || parts[3] != "history" ||
      options_.history == nullptr) {
    return absl::NotFoundError(absl::StrCat("no such path: ", request.path));
  }
  std::string chainlet;
  for (absl::string_view pair : absl::StrSplit(request.query, '&')) {
    if (absl::ConsumePrefix(&pair, "chainlet=")) chainlet = std::string(pair);
  }
  std::vector<FieldViolation> v;
  if (std::optional<std::string> p = ChainIdProblem(parts[0])) v.push_back({"chain_id", *p});
  if (std::optional<std::string> p = EnvironmentNameProblem(parts[2])) {
    v.push_back({"env_name", *p});
  }
  if (std::optional<std::string> p = ChainletNameProblem(chainlet)) {
    v.push_back({"chainlet", *p});
  }
  if (!v.empty()) return InvalidArgumentWithViolations(v);
  ChainletLookup lookup;
  {
    absl::MutexLock lock(&lookup_mu_);
    lookup = lookup_;
  }
  if (lookup == nullptr) {
    return absl::UnavailableError("the control plane is still opening its store");
  }
  if (absl::Status s = lookup(parts[0], parts[2], chainlet); !s.ok()) return s;
  return Json(options_.history->Get(parts[0], parts[2], chainlet));
}

absl::StatusOr<ConsoleResponse> Console::Simulate(const ConsoleRequest& request) {
  // Simulations take CPU on the control plane: only a few at once.
  if (running_simulations_.fetch_add(1) >= options_.max_concurrent_simulations) {
    running_simulations_.fetch_sub(1);
    return absl::ResourceExhaustedError(absl::StrCat(
        options_.max_concurrent_simulations,
        " simulations are running on this control plane; retry when one has finished"));
  }
  Running running(running_simulations_);
  absl::StatusOr<v1::SimulationRequest> parsed = SimulationRequestFromJson(request.body);
  if (!parsed.ok()) return parsed.status();
  return JsonOr(RunSimulationRequest(*parsed, options_.simulation_limits));
}

}  // namespace chainscale
