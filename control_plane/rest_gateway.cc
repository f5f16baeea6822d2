#include "control_plane/rest_gateway.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/type_resolver_util.h>

#include <cmath>
#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/field_violations.h"
#include "control_plane/baseten_rest.h"

namespace chainscale {
namespace {

using google::protobuf::util::JsonParseOptions;
using google::protobuf::util::JsonPrintOptions;

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

// `message` as JSON with map entries (the keys of a Struct too) in key order, so a body
// reads the same every time: MessageToJsonString prints them in the map's hash order,
// which changes from run to run.
absl::Status PrintJson(const google::protobuf::Message& message, const JsonPrintOptions& options,
                       std::string* out) {
  static google::protobuf::util::TypeResolver* const resolver =
      google::protobuf::util::NewTypeResolverForDescriptorPool(
          "type.googleapis.com", google::protobuf::DescriptorPool::generated_pool());
  std::string binary;
  {
    google::protobuf::io::StringOutputStream stream(&binary);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  const auto status = google::protobuf::util::BinaryToJsonString(
      resolver, "type.googleapis.com/" + message.GetDescriptor()->full_name(), binary, out,
      options);
  return status.ok() ? absl::OkStatus() : absl::InternalError(status.message().as_string());
}

RestResponse Json(const google::protobuf::Message& message) {
  JsonPrintOptions options;
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

// Parses a request body; protobuf's JSON parser rejects unknown fields and takes null as
// "not passed".
absl::Status ParseBody(const std::string& body, google::protobuf::Message* message) {
  if (absl::StripAsciiWhitespace(body).empty()) {
    return absl::InvalidArgumentError("the request body is empty; send a JSON object");
  }
  JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(body, message, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the request body is not valid: ", status.message().as_string()));
  }
  return absl::OkStatus();
}

// `text` with every byte that is not part of valid UTF-8 replaced by U+FFFD: error
// messages echo names from requests, and JSON strings must be UTF-8.
std::string ValidUtf8(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    const size_t length = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3
                                       : (c >> 3) == 0x1E ? 4 : 0;
    bool valid = length > 0 && i + length <= text.size();
    for (size_t k = 1; valid && k < length; ++k) {
      valid = (static_cast<unsigned char>(text[i + k]) >> 6) == 0x2;
    }
    if (valid && length > 1) {
      // Reject overlong forms, surrogates and values past U+10FFFF.
      uint32_t cp = c & (0xFF >> (length + 1));
      for (size_t k = 1; k < length; ++k) cp = (cp << 6) | (text[i + k] & 0x3F);
      valid = !(length == 2 && cp < 0x80) && !(length == 3 && cp < 0x800) &&
              !(length == 4 && cp < 0x10000) && !(cp >= 0xD800 && cp <= 0xDFFF) &&
              cp <= 0x10FFFF;
    }
    if (valid) {
      out.append(text.data() + i, length);
      i += length;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

RestResponse MethodNotAllowed(const std::string& allowed) {
  RestResponse response = ErrorResponse(
      absl::InvalidArgumentError(absl::StrCat("method not allowed here; use ", allowed)));
  response.status = 405;
  response.headers["Allow"] = allowed;
  return response;
}

}  // namespace

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

RestResponse ErrorResponse(const absl::Status& status, std::optional<double> retry_after) {
  google::protobuf::Struct root;
  google::protobuf::Struct* error = (*root.mutable_fields())["error"].mutable_struct_value();
  (*error->mutable_fields())["code"].set_string_value(
      absl::StatusCodeToString(status.code()));
  (*error->mutable_fields())["message"].set_string_value(ValidUtf8(status.message()));
  const std::vector<FieldViolation> violations = FieldViolationsOf(status);
  if (!violations.empty()) {
    auto* list = (*error->mutable_fields())["field_violations"].mutable_list_value();
    for (const FieldViolation& v : violations) {
      auto* fields = list->add_values()->mutable_struct_value()->mutable_fields();
      (*fields)["field"].set_string_value(ValidUtf8(v.field));
      (*fields)["description"].set_string_value(ValidUtf8(v.description));
    }
  }
  if (retry_after.has_value()) (*root.mutable_fields())["retry_after"].set_number_value(*retry_after);
  RestResponse response;
  response.status = HttpStatusFor(status.code());
  if (!PrintJson(root, JsonPrintOptions(), &response.body).ok()) {
    response.body = R"({"error":{"code":"INTERNAL","message":"cannot print the error as JSON"}})";
  }
  response.body += '\n';
  return response;
}

RestGateway::RestGateway(RestGatewayOptions options, Metrics* metrics, const Clock& clock)
    : options_(std::move(options)), metrics_(metrics), clock_(clock) {}

std::optional<double> RestGateway::Throttle(const std::string& key) {
  const double rate = options_.requests_per_second_per_key;
  if (rate <= 0) return std::nullopt;
  const absl::Time now = clock_.Now();
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = buckets_.try_emplace(key, Bucket{rate, now});
  Bucket& bucket = it->second;
  // Refill at `rate` per second up to a burst of one second's worth.
  bucket.tokens =
      std::min(rate, bucket.tokens + absl::ToDoubleSeconds(now - bucket.refilled) * rate);
  bucket.refilled = now;
  if (bucket.tokens >= 1) {
    bucket.tokens -= 1;
    return std::nullopt;
  }
  return (1 - bucket.tokens) / rate;
}

RestResponse RestGateway::Handle(const RestRequest& request) {
  const absl::Time start = absl::Now();
  RestResponse response;
  std::string key = "anonymous";
  if (request.body.size() > options_.max_body_bytes) {
    response = ErrorResponse(absl::InvalidArgumentError(
        absl::StrCat("the request body is larger than ", options_.max_body_bytes, " bytes")));
    response.status = 413;
  } else if (absl::Status auth = options_.api_keys.empty()
                                     ? absl::OkStatus()
                                     : options_.api_keys.Check(request.authorization);
             !auth.ok()) {
    response = ErrorResponse(auth);
    response.headers["WWW-Authenticate"] = "Api-Key";
  } else {
    if (!options_.api_keys.empty()) key = request.authorization;
    if (std::optional<double> retry_after = Throttle(key)) {
      // The body says when, precisely; the header in whole seconds, as HTTP wants.
      response = ErrorResponse(
          absl::ResourceExhaustedError(absl::StrCat(
              "more than ", options_.requests_per_second_per_key,
              " requests per second with this key; retry after ", *retry_after, " s")),
          retry_after);
      response.headers["Retry-After"] = absl::StrCat(std::ceil(*retry_after));
    } else if (Management* management = management_.load(); management == nullptr) {
      response = ErrorResponse(absl::UnavailableError("the control plane is still opening its store"));
    } else {
      response = Route(request, *management);
    }
  }
  response.headers["Content-Type"] = "application/json";
  metrics_->RecordRpc(absl::StrCat("REST ", request.method),
                      response.status < 400 ? "OK" : absl::StrCat("HTTP_", response.status),
                      absl::Now() - start);
  return response;
}

RestResponse RestGateway::Route(const RestRequest& request, Management& management) {
  std::smatch m;
  if (std::regex_match(request.path, m, SettingsPath())) {
    if (request.method != "PATCH") return MethodNotAllowed("PATCH");
    v1::UpdateChainletEnvironmentAutoscalingSettingsRequest update;
    if (absl::Status s = ParseBody(request.body, &update); !s.ok()) return ErrorResponse(s);
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
    if (request.method != "GET") return MethodNotAllowed("GET");
    absl::StatusOr<v1::ChainEnvironment> env =
        registry.GetChainEnvironment(m[1].str(), m[2].str());
    if (!env.ok()) return ErrorResponse(env.status());
    return Json(ChainEnvironmentToBaseten(*env));
  }
  if (std::regex_match(request.path, m, EnvironmentsPath())) {
    if (request.method == "GET") {
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
    if (request.method != "POST") return MethodNotAllowed("GET, POST");
    v1::CreateChainEnvironmentRequestV1 body;
    if (absl::Status s = ParseBody(request.body, &body); !s.ok()) return ErrorResponse(s);
    absl::StatusOr<v1::ChainEnvironment> env =
        registry.CreateEnvironment(CreateEnvironmentFromBaseten(m[1].str(), body));
    if (!env.ok()) return ErrorResponse(env.status());
    return Json(ChainEnvironmentToBaseten(*env));
  }
  if (std::regex_match(request.path, m, ChainPath())) {
    if (request.method == "GET") {
      absl::StatusOr<v1::Chain> chain = registry.GetChain(m[1].str());
      if (!chain.ok()) return ErrorResponse(chain.status());
      return Json(ChainToBaseten(*chain));
    }
    if (request.method != "DELETE") return MethodNotAllowed("GET, DELETE");
    absl::StatusOr<int64_t> deleted = registry.DeleteChain(m[1].str());
    if (!deleted.ok()) return ErrorResponse(deleted.status());
    v1::ChainTombstoneV1 tombstone;
    tombstone.set_id(m[1].str());
    tombstone.set_deleted(true);
    return Json(tombstone);
  }
  if (std::regex_match(request.path, m, ChainsPath())) {
    if (request.method != "GET") return MethodNotAllowed("GET");
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

void RestGateway::Register(httplib::Server& server) {
  auto handler = [this](const httplib::Request& req, httplib::Response& res) {
    RestResponse response =
        Handle({req.method, req.path, req.get_header_value("Authorization"), req.body});
    res.status = response.status;
    for (const auto& [name, value] : response.headers) {
      if (name != "Content-Type") res.set_header(name.c_str(), value);
    }
    res.set_content(response.body, "application/json");
  };
  const char* pattern = "/v1/.*";
  server.Get(pattern, handler);
  server.Post(pattern, handler);
  server.Patch(pattern, handler);
  server.Put(pattern, handler);
  server.Delete(pattern, handler);
  // httplib's own errors (413 for an oversized body, 404 for other paths, 400 for a
  // malformed request) in the same JSON shape.
  server.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    absl::Status status = res.status == 404   ? absl::NotFoundError("no such path")
                          : res.status == 413 ? absl::InvalidArgumentError(
                                                    "the request body is too large")
                                              : absl::InvalidArgumentError("bad request");
    RestResponse response = ErrorResponse(status);
    res.set_content(response.body, "application/json");
  });
}

}  // namespace chainscale
