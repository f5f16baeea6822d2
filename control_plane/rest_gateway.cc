#include "control_plane/rest_gateway.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cmath>
#include <regex>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/json_print.h"
#include "control_plane/baseten_rest.h"

namespace chainscale {
namespace {

const std::regex& SettingsPath() {
  static const auto* re = new std::regex(
      "^/v1/chains/([^/]+)/environments/([^/]+)/chainlet_settings/autoscaling_settings/?$");
  return *re;
}
const std::regex& EnvironmentPath() {
  static const auto* re = new std::regex("^/v1/chains/([^/]+)/environments/([^/]+)/?$");
  return *re;
}
const std::regex& EnvironmentsPath() {
  static const auto* re = new std::regex("^/v1/chains/([^/]+)/environments/?$");
  return *re;
}
const std::regex& ChainPath() {
  static const auto* re = new std::regex("^/v1/chains/([^/]+)/?$");
  return *re;
}
const std::regex& ChainsPath() {
  static const auto* re = new std::regex("^/v1/chains/?$");
  return *re;
}

RestResponse Json(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;  // Baseten prints 0 and false too
  RestResponse response;
  if (!PrintJson(message, options, &response.body).ok()) {
    return ErrorResponse(absl::InternalError("cannot print the response as JSON"));
  }
  response.body += '\n';  // so a shell prompt does not stick to the JSON
  return response;
}

template <typename T>
RestResponse JsonOr(const absl::StatusOr<T>& result) {
  return result.ok() ? Json(*result) : ErrorResponse(result.status());
}

// Nothing when `method` is one the path serves (HEAD wherever GET is); otherwise the
// answer: 204 with Allow for OPTIONS, 405 with Allow for the rest.
std::optional<RestResponse> CheckMethod(const std::string& method,
                                        const std::vector<std::string>& served) {
  if (std::find(served.begin(), served.end(), method) != served.end() ||
      (method == "HEAD" && std::find(served.begin(), served.end(), "GET") != served.end())) {
    return std::nullopt;
  }
  const std::string allow = HttpAllowHeader(served);
  RestResponse response;
  if (method == "OPTIONS") {
    response.status = 204;
  } else {
    response = ErrorResponse(absl::InvalidArgumentError(
        absl::StrCat("method ", method, " not allowed here; use ", allow)));
    response.status = 405;
  }
  response.headers["Allow"] = allow;
  return response;
}

// A 429 that says when to come back: exactly in the body, in whole seconds in the header.
RestResponse TooManyRequests(absl::string_view why, absl::Duration wait) {
  const double seconds = absl::ToDoubleSeconds(wait);
  RestResponse response = ErrorResponse(
      absl::ResourceExhaustedError(absl::StrCat(why, "; retry after ", seconds, " s")), seconds);
  response.headers["Retry-After"] = absl::StrCat(std::ceil(seconds));
  return response;
}

}  // namespace

RestRequest RestRequestFrom(const HttpRequest& request) {
  return {request.method, request.path, request.Header("Authorization"), request.body,
          request.client_address};
}

HttpResponse HttpResponseFrom(RestResponse response) {
  HttpResponse out;
  out.status = response.status;
  out.body = std::move(response.body);
  for (auto& [name, value] : response.headers) {
    if (name == "Content-Type") {
      out.content_type = value;
    } else {
      out.headers.emplace_back(name, value);
    }
  }
  return out;
}

RestResponse ErrorResponse(const absl::Status& status, std::optional<double> retry_after) {
  RestResponse response;
  response.status = HttpStatusFor(status.code());
  response.body = ErrorJson(status, retry_after);
  return response;
}

RestGateway::RestGateway(RestGatewayOptions options, Metrics* metrics, const Clock& clock)
    : options_(std::move(options)),
      metrics_(metrics),
      requests_({std::max(options_.requests_per_second_per_key, 1e-9),
                 std::max(options_.requests_per_second_per_key, 1.0), options_.max_tracked},
                clock),
      failures_({options_.failed_keys_per_second, options_.failed_keys_burst,
                 options_.max_tracked},
                clock) {}

RestResponse RestGateway::Handle(const RestRequest& request) {
  if (std::optional<RestResponse> refused = Admit(request)) return *std::move(refused);
  return Respond(request);
}

std::optional<RestResponse> RestGateway::Admit(const RestRequest& head) {
  const absl::Time start = absl::Now();
  std::optional<RestResponse> refusal = Refusal(head);
  if (!refusal.has_value()) return std::nullopt;
  return Finish(head, *std::move(refusal), start);
}

std::optional<RestResponse> RestGateway::Refusal(const RestRequest& head) {
  if (head.body.size() > options_.max_body_bytes) {
    RestResponse response = ErrorResponse(absl::InvalidArgumentError(
        absl::StrCat("the request body is larger than ", options_.max_body_bytes, " bytes")));
    response.status = 413;
    return response;
  }
  std::string bucket = "anonymous";
  if (!options_.api_keys.empty()) {
    if (absl::Duration wait = failures_.Wait(head.client_address); wait > absl::ZeroDuration()) {
      return TooManyRequests("too many requests with wrong keys from this address", wait);
    }
    absl::StatusOr<size_t> key = options_.api_keys.Identify(head.authorization);
    if (!key.ok()) {
      failures_.Take(head.client_address);
      RestResponse response = ErrorResponse(key.status());
      response.headers["WWW-Authenticate"] = "Api-Key";
      return response;
    }
    // One bucket per key, however the header spells it.
    bucket = absl::StrCat("key ", *key);
  }
  if (options_.requests_per_second_per_key > 0) {
    if (absl::Duration wait = requests_.Take(bucket); wait > absl::ZeroDuration()) {
      return TooManyRequests(absl::StrCat("more than ", options_.requests_per_second_per_key,
                                          " requests per second with this key"),
                             wait);
    }
  }
  return std::nullopt;
}

RestResponse RestGateway::Respond(const RestRequest& request) {
  const absl::Time start = absl::Now();
  Management* management = management_.load();
  RestResponse response =
      management == nullptr
          ? ErrorResponse(absl::UnavailableError("the control plane is still opening its store"))
          : Route(request, *management);
  return Finish(request, std::move(response), start);
}

RestResponse RestGateway::Finish(const RestRequest& request, RestResponse response,
                                 absl::Time start) {
  response.headers["Content-Type"] = "application/json";
  metrics_->RecordRpc(absl::StrCat("REST ", request.method),
                      response.status < 400 ? "OK" : absl::StrCat("HTTP_", response.status),
                      absl::Now() - start);
  return response;
}

RestResponse RestGateway::Route(const RestRequest& request, Management& management) {
  // HEAD is answered as GET (CheckMethod lets it through where GET is served); the HTTP
  // server drops the body.
  const std::string& method = request.method == "HEAD" ? "GET" : request.method;
  std::smatch m;
  if (std::regex_match(request.path, m, SettingsPath())) {
    if (auto answer = CheckMethod(request.method, {"PATCH"})) return *std::move(answer);
    v1::UpdateChainletEnvironmentAutoscalingSettingsRequest update;
    if (absl::Status s = ParseJsonBody(request.body, &update); !s.ok()) return ErrorResponse(s);
    if (!update.chain_id().empty() || !update.env_name().empty()) {
      return ErrorResponse(absl::InvalidArgumentError(
          "the body has only \"updates\"; chain_id and env_name come from the path"));
    }
    update.set_chain_id(m[1]);
    update.set_env_name(m[2]);
    return JsonOr(management.UpdateSettings(update));
  }
  Registry& registry = management.registry();
  if (std::regex_match(request.path, m, EnvironmentPath())) {
    if (auto answer = CheckMethod(request.method, {"GET"})) return *std::move(answer);
    absl::StatusOr<v1::ChainEnvironment> env =
        registry.GetChainEnvironment(m[1].str(), m[2].str());
    if (!env.ok()) return ErrorResponse(env.status());
    return Json(ChainEnvironmentToBaseten(*env));
  }
  if (std::regex_match(request.path, m, EnvironmentsPath())) {
    if (auto answer = CheckMethod(request.method, {"GET", "POST"})) return *std::move(answer);
    if (method == "GET") {
      absl::StatusOr<v1::Chain> chain = registry.GetChain(m[1].str());
      if (!chain.ok()) return ErrorResponse(chain.status());
      v1::ChainEnvironmentsV1 list;
      for (const std::string& name : chain->environments()) {
        absl::StatusOr<v1::ChainEnvironment> env = registry.GetChainEnvironment(m[1].str(), name);
        if (absl::IsNotFound(env.status())) continue;  // deleted since the chain was read
        if (!env.ok()) return ErrorResponse(env.status());
        *list.add_environments() = ChainEnvironmentToBaseten(*env);
      }
      return Json(list);
    }
    v1::CreateChainEnvironmentRequestV1 body;
    if (absl::Status s = ParseJsonBody(request.body, &body); !s.ok()) return ErrorResponse(s);
    absl::StatusOr<v1::ChainEnvironment> env =
        registry.CreateEnvironment(CreateEnvironmentFromBaseten(m[1].str(), body));
    if (!env.ok()) return ErrorResponse(env.status());
    return Json(ChainEnvironmentToBaseten(*env));
  }
  if (std::regex_match(request.path, m, ChainPath())) {
    if (auto answer = CheckMethod(request.method, {"GET", "DELETE"})) return *std::move(answer);
    if (method == "GET") {
      absl::StatusOr<v1::Chain> chain = registry.GetChain(m[1].str());
      if (!chain.ok()) return ErrorResponse(chain.status());
      return Json(ChainToBaseten(*chain));
    }
    absl::StatusOr<int64_t> deleted = registry.DeleteChain(m[1].str());
    if (!deleted.ok()) return ErrorResponse(deleted.status());
    v1::ChainTombstoneV1 tombstone;
    tombstone.set_id(m[1].str());
    tombstone.set_deleted(true);
    return Json(tombstone);
  }
  if (std::regex_match(request.path, m, ChainsPath())) {
    if (auto answer = CheckMethod(request.method, {"GET"})) return *std::move(answer);
    // Baseten's list has no paging: every page of the registry's.
    v1::ChainsV1 list;
    v1::ListChainsRequest page;
    do {
      absl::StatusOr<v1::ListChainsResponse> chains = registry.ListChains(page);
      if (!chains.ok()) return ErrorResponse(chains.status());
      for (const v1::Chain& chain : chains->chains()) *list.add_chains() = ChainToBaseten(chain);
      page.set_page_token(chains->next_page_token());
    } while (!page.page_token().empty());
    return Json(list);
  }
  return ErrorResponse(absl::NotFoundError(absl::StrCat("no such path: ", request.path)));
}

void RestGateway::Register(HttpServer& server) {
  HttpRoute route;
  route.path = "/v1/";
  route.prefix = true;
  route.admission = [this](const HttpRequest& head) -> std::optional<HttpResponse> {
    std::optional<RestResponse> refused = Admit(RestRequestFrom(head));
    if (!refused.has_value()) return std::nullopt;
    return HttpResponseFrom(*std::move(refused));
  };
  route.handler = [this](const HttpRequest& request) {
    return HttpResponseFrom(Respond(RestRequestFrom(request)));
  };
  server.Route(std::move(route));
}

}  // namespace chainscale
