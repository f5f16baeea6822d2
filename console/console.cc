#include "console/console.h"

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "console/console_assets.h"
#include "tools/simulator/scenarios.h"

namespace chainscale {
namespace {

constexpr absl::string_view kAssetPrefix = "/console/";
constexpr absl::string_view kReadPrefix = "/v1/console/";

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

bool Console::Serves(const std::string& path) {
  return path == "/" || absl::StartsWith(path, kAssetPrefix) ||
         absl::StartsWith(path, kReadPrefix) || path == "/v1/simulations" ||
         path == "/v1/simulations/scenarios";
}

ConsoleResponse Console::Handle(const ConsoleRequest& request) {
  const std::string& path = request.path;
  // Pages and assets need no key: they hold no data.
  if (path == "/" || absl::StartsWith(path, kAssetPrefix)) {
    if (request.method != "GET" && request.method != "HEAD") return MethodNotAllowed("GET");
    const ConsoleAsset* asset = FindConsoleAsset(
        path == "/" ? absl::string_view("index.html") : absl::string_view(path).substr(kAssetPrefix.size()));
    if (asset == nullptr) return Error(absl::NotFoundError(absl::StrCat("no such page: ", path)));
    ConsoleResponse response;
    response.content_type = std::string(asset->content_type);
    response.body = std::string(asset->body);
    response.headers = PageHeaders();
    return response;
  }
  const bool open = options_.api_keys.empty();
  const absl::Status key = open ? absl::OkStatus() : options_.api_keys.Check(request.authorization);
  if (path == "/v1/console/session") {
    if (request.method != "GET") return MethodNotAllowed("GET");
    ConsoleResponse response;
    response.content_type = "application/json";
    response.body = absl::StrCat("{\"auth\":\"", open ? "none" : "api_key",
                                 "\",\"authenticated\":", key.ok() ? "true" : "false", "}\n");
    return response;
  }
  if (request.body.size() > options_.max_body_bytes) {
    ConsoleResponse response = Error(absl::InvalidArgumentError(absl::StrCat(
        "the request body is larger than ", options_.max_body_bytes, " bytes")));
    response.http_status = 413;
    return response;
  }
  if (!key.ok()) {
    ConsoleResponse response = Error(key);
    response.headers["WWW-Authenticate"] = "Api-Key";
    return response;
  }
  absl::StatusOr<ConsoleResponse> response;
  if (path == "/v1/simulations") {
    if (request.method != "POST") return MethodNotAllowed("POST");
    response = Simulate(request);
  } else if (path == "/v1/simulations/scenarios") {
    if (request.method != "GET") return MethodNotAllowed("GET");
    v1::ListSimulationScenariosResponse scenarios;
    for (const v1::SimulationScenario& s : SimulationScenarios()) *scenarios.add_scenarios() = s;
    response = Json(scenarios);
  } else {
    if (request.method != "GET") return MethodNotAllowed("GET");
    response = Read(request);
  }
  return response.ok() ? *std::move(response) : Error(response.status());
}

absl::StatusOr<ConsoleResponse> Console::Read(const ConsoleRequest& request) const {
  const Registry* registry = registry_.load();
  if (registry == nullptr) {
    return absl::UnavailableError("the control plane is still opening its store");
  }
  // chains, chains/{chain_id} or chains/{chain_id}/environments/{env_name}
  const std::vector<absl::string_view> parts =
      absl::StrSplit(absl::string_view(request.path).substr(kReadPrefix.size()), '/');
  if (parts.size() == 1 && parts[0] == "chains") {
    v1::ListChainsRequest list;
    if (auto it = request.query.find("page_token"); it != request.query.end()) {
      list.set_page_token(it->second);
    }
    if (auto it = request.query.find("page_size"); it != request.query.end()) {
      int32_t size;
      if (!absl::SimpleAtoi(it->second, &size)) {
        return absl::InvalidArgumentError("page_size must be a whole number");
      }
      list.set_page_size(size);
    }
    return JsonOr(registry->ListChains(list));
  }
  if (parts.size() == 2 && parts[0] == "chains") return JsonOr(registry->GetChain(parts[1]));
  if (parts.size() == 4 && parts[0] == "chains" && parts[2] == "environments") {
    return JsonOr(registry->GetChainEnvironment(parts[1], parts[3]));
  }
  return absl::NotFoundError(absl::StrCat("no such path: ", request.path));
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
