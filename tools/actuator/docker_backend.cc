#include "tools/actuator/docker_backend.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <cmath>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/json_print.h"
#include "common/log.h"

namespace chainscale {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

// The Engine API version every path names: docker.io 20.10 speaks it, later daemons too.
constexpr char kApi[] = "/v1.41";

std::string Encode(absl::string_view text) {
  return boost::urls::encode(std::string_view(text.data(), text.size()),
                             boost::urls::unreserved_chars);
}

std::string StringField(const Struct& object, const std::string& key) {
  auto it = object.fields().find(key);
  return it != object.fields().end() && it->second.has_string_value() ? it->second.string_value()
                                                                       : "";
}

const Struct* StructField(const Struct& object, const std::string& key) {
  auto it = object.fields().find(key);
  return it != object.fields().end() && it->second.has_struct_value() ? &it->second.struct_value()
                                                                       : nullptr;
}

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  // Struct, Value and ListValue of strings always print.
  (void)PrintJson(message, google::protobuf::util::JsonPrintOptions(), &out);
  return out;
}

absl::StatusOr<Value> ParseJson(const std::string& text, absl::string_view what) {
  Value value;
  if (!google::protobuf::util::JsonStringToMessage(text, &value).ok()) {
    return absl::InternalError(absl::StrCat("the Docker daemon's answer to ", what,
                                            " is not JSON"));
  }
  return value;
}

// A daemon's error answer: its {"message": ...} with a code that fits the HTTP status.
absl::Status ErrorOf(const HttpClientResponse& response, absl::string_view what) {
  std::string message = absl::StrCat("HTTP ", response.status);
  absl::StatusOr<Value> body = ParseJson(response.body, what);
  if (body.ok() && body->has_struct_value()) {
    const std::string said = StringField(body->struct_value(), "message");
    if (!said.empty()) message = said;
  }
  const std::string text = absl::StrCat(what, ": the Docker daemon says: ", message);
  switch (response.status) {
    case 400:
      return absl::InvalidArgumentError(text);
    case 404:
      return absl::NotFoundError(text);
    case 409:
      return absl::FailedPreconditionError(text);
    default:
      return response.status >= 500 ? absl::UnavailableError(text) : absl::InternalError(text);
  }
}

std::string Short(const std::string& id) { return id.substr(0, 12); }

}  // namespace

absl::StatusOr<std::unique_ptr<DockerBackend>> DockerBackend::Create(
    DockerBackendOptions options) {
  absl::string_view path = options.docker_host;
  if (!absl::ConsumePrefix(&path, "unix://") && !absl::ConsumePrefix(&path, "unix:")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--docker_host=", options.docker_host,
        ": only the daemon's unix socket is supported (unix:///var/run/docker.sock)"));
  }
  const size_t equals = options.label.find('=');
  if (equals == std::string::npos || equals == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("the service label \"", options.label, "\" is not key=value"));
  }
  std::string socket = absl::StrCat("unix:", path);
  return std::unique_ptr<DockerBackend>(new DockerBackend(std::move(options), std::move(socket)));
}

DockerBackend::DockerBackend(DockerBackendOptions options, std::string socket)
    : options_(std::move(options)),
      socket_(std::move(socket)),
      stoppers_(std::max(1, options_.stop_threads)) {}

DockerBackend::~DockerBackend() = default;  // stoppers_ finishes the stops under way

absl::StatusOr<HttpClientResponse> DockerBackend::Call(const std::string& method,
                                                       const std::string& path,
                                                       const std::string& body,
                                                       absl::Duration timeout) const {
  HttpClientRequest request;
  request.method = method;
  request.target = absl::StrCat(kApi, path);
  request.body = body;
  if (!body.empty()) request.headers.emplace_back("Content-Type", "application/json");
  HttpClientOptions client;
  client.timeout = timeout > absl::ZeroDuration() ? timeout : options_.call_timeout;
  absl::StatusOr<HttpClientResponse> response = HttpCall(socket_, request, client);
  if (!response.ok()) {
    return absl::UnavailableError(absl::StrCat("cannot reach the Docker daemon at ",
                                               options_.docker_host, ": ",
                                               response.status().message()));
  }
  return response;
}

absl::Status DockerBackend::Remove(const std::string& id, bool force) const {
  absl::StatusOr<HttpClientResponse> response =
      Call("DELETE", absl::StrCat("/containers/", id, force ? "?force=true" : ""));
  if (!response.ok()) return response.status();
  if (response->status == 204 || response->status == 404) return absl::OkStatus();
  return ErrorOf(*response, absl::StrCat("removing container ", Short(id)));
}

absl::StatusOr<std::vector<Replica>> DockerBackend::List() {
  Struct filters;
  (*filters.mutable_fields())["label"].mutable_list_value()->add_values()->set_string_value(
      options_.label);
  absl::StatusOr<HttpClientResponse> response =
      Call("GET", absl::StrCat("/containers/json?all=true&filters=", Encode(ToJson(filters))));
  if (!response.ok()) return response.status();
  if (response->status != 200) return ErrorOf(*response, "listing containers");
  absl::StatusOr<Value> listed = ParseJson(response->body, "listing containers");
  if (!listed.ok()) return listed.status();

  struct Found {
    Replica replica;
    double created = 0;
  };
  std::vector<Found> running;
  std::string oldest_foreign;  // the oldest container of the service it did not create
  double oldest_foreign_created = 0;
  std::string oldest_own;
  int64_t oldest_own_serial = 0;
  for (const Value& item : listed->list_value().values()) {
    if (!item.has_struct_value()) continue;
    const Struct& container = item.struct_value();
    const std::string id = StringField(container, "Id");
    const std::string state = StringField(container, "State");
    std::string name = Short(id);
    auto names = container.fields().find("Names");
    if (names != container.fields().end() && names->second.list_value().values_size() > 0) {
      name = std::string(absl::StripPrefix(names->second.list_value().values(0).string_value(), "/"));
    }
    auto created_field = container.fields().find("Created");
    const double created =
        created_field != container.fields().end() ? created_field->second.number_value() : 0;
    std::string target;
    std::string serial_label;
    if (const Struct* labels = StructField(container, "Labels")) {
      target = StringField(*labels, kTargetLabel);
      serial_label = StringField(*labels, kSerialLabel);
    }
    if (id.empty() || (!target.empty() && target != options_.target)) continue;
    const bool alive = state == "running" || state == "restarting";
    const std::string description = absl::StrCat("container ", name, " (", Short(id), ")");
    if (target.empty()) {
      if (oldest_foreign.empty() || created < oldest_foreign_created) {
        oldest_foreign = id;
        oldest_foreign_created = created;
      }
      if (alive) running.push_back({{id, 0, description}, created});
      continue;
    }
    int64_t serial = 0;
    if (!absl::SimpleAtoi(serial_label, &serial) || serial < 1) serial = 1;
    next_serial_ = std::max(next_serial_, serial + 1);
    if (alive) {
      running.push_back({{id, serial, description}, created});
      if (oldest_own.empty() || serial < oldest_own_serial) {
        oldest_own = id;
        oldest_own_serial = serial;
      }
    } else if (state == "exited" || state == "dead" || state == "created") {
      // A replica that ended (or never started): nothing will bring it back. Clean-up
      // only: a failure (a removal already under way) is tried again on the next List.
      if (absl::Status s = Remove(id, /*force=*/false); !s.ok()) {
        LogWarning("cannot remove a replica container that had stopped",
                   {{"chainlet", options_.target},
                    {"container", description},
                    {"error", std::string(s.message())}});
      } else {
        LogInfo("removed a replica container that had stopped",
                {{"chainlet", options_.target}, {"container", description}, {"state", state}});
      }
    }
  }
  template_id_ = !oldest_foreign.empty() ? oldest_foreign : oldest_own;
  std::stable_sort(running.begin(), running.end(), [](const Found& a, const Found& b) {
    return a.replica.serial != b.replica.serial ? a.replica.serial < b.replica.serial
                                                : a.created < b.created;
  });
  std::vector<Replica> replicas;
  for (Found& f : running) replicas.push_back(std::move(f.replica));
  return replicas;
}

absl::StatusOr<Replica> DockerBackend::Start() {
  const std::string source =
      options_.template_container.empty() ? template_id_ : options_.template_container;
  if (source.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no container with label ", options_.label,
        " to clone: start one (docker compose up) or name a template (template=<container>)"));
  }
  absl::StatusOr<HttpClientResponse> response =
      Call("GET", absl::StrCat("/containers/", Encode(source), "/json"));
  if (!response.ok()) return response.status();
  if (response->status != 200) {
    return ErrorOf(*response, absl::StrCat("inspecting the template container ", source));
  }
  absl::StatusOr<Value> inspected = ParseJson(response->body, "inspecting a container");
  if (!inspected.ok()) return inspected.status();
  const Struct& container = inspected->struct_value();
  const std::string template_id = StringField(container, "Id");
  const std::string template_name =
      std::string(absl::StripPrefix(StringField(container, "Name"), "/"));

  // The template's configuration, minus what belongs to that one container.
  Struct body;
  if (const Struct* config = StructField(container, "Config")) *body.mutable_fields() =
      config->fields();
  const std::string hostname = StringField(body, "Hostname");
  body.mutable_fields()->erase("Hostname");
  body.mutable_fields()->erase("MacAddress");
  const int64_t serial = next_serial_;
  Struct* labels = (*body.mutable_fields())["Labels"].mutable_struct_value();
  (*labels->mutable_fields())[kTargetLabel].set_string_value(options_.target);
  (*labels->mutable_fields())[kSerialLabel].set_string_value(absl::StrCat(serial));
  std::string network_mode;
  if (const Struct* host = StructField(container, "HostConfig")) {
    Struct* copy = (*body.mutable_fields())["HostConfig"].mutable_struct_value();
    *copy = *host;
    copy->mutable_fields()->erase("PortBindings");  // host ports cannot be shared
    network_mode = StringField(*host, "NetworkMode");
  }
  // Each network with the service's aliases, not the ones naming the template itself.
  std::map<std::string, ListValue> networks;
  if (const Struct* settings = StructField(container, "NetworkSettings")) {
    if (const Struct* attached = StructField(*settings, "Networks")) {
      for (const auto& [network, endpoint] : attached->fields()) {
        ListValue& aliases = networks[network];
        if (!endpoint.has_struct_value()) continue;
        auto listed = endpoint.struct_value().fields().find("Aliases");
        if (listed == endpoint.struct_value().fields().end()) continue;
        for (const Value& alias : listed->second.list_value().values()) {
          const std::string& a = alias.string_value();
          if (a.empty() || a == Short(template_id) || a == hostname || a == template_name) {
            continue;
          }
          aliases.add_values()->set_string_value(a);
        }
      }
    }
  }
  auto endpoint_config = [](const ListValue& aliases) {
    Struct endpoint;
    if (aliases.values_size() > 0) {
      *(*endpoint.mutable_fields())["Aliases"].mutable_list_value() = aliases;
    }
    return endpoint;
  };
  // API 1.41 creates a container on one network; the others are connected before it starts.
  std::string first_network;
  if (!networks.empty()) {
    first_network = networks.count(network_mode) > 0 ? network_mode : networks.begin()->first;
    Struct* networking = (*body.mutable_fields())["NetworkingConfig"].mutable_struct_value();
    *(*(*networking->mutable_fields())["EndpointsConfig"].mutable_struct_value()
           ->mutable_fields())[first_network]
         .mutable_struct_value() = endpoint_config(networks[first_network]);
  }

  const std::string name = absl::StrCat(options_.name_prefix, "-", serial);
  response = Call("POST", absl::StrCat("/containers/create?name=", Encode(name)), ToJson(body));
  if (!response.ok()) return response.status();
  if (response->status != 201) return ErrorOf(*response, absl::StrCat("creating ", name));
  next_serial_ = serial + 1;
  absl::StatusOr<Value> created = ParseJson(response->body, "creating a container");
  if (!created.ok()) return created.status();
  const std::string id = StringField(created->struct_value(), "Id");
  if (id.empty()) return absl::InternalError("the Docker daemon created a container without an id");

  absl::Status started;
  for (const auto& [network, aliases] : networks) {
    if (network == first_network) continue;
    Struct connect;
    (*connect.mutable_fields())["Container"].set_string_value(id);
    *(*connect.mutable_fields())["EndpointConfig"].mutable_struct_value() =
        endpoint_config(aliases);
    response = Call("POST", absl::StrCat("/networks/", Encode(network), "/connect"),
                    ToJson(connect));
    if (!response.ok()) {
      started = response.status();
    } else if (response->status != 200) {
      started = ErrorOf(*response, absl::StrCat("connecting ", name, " to network ", network));
    }
    if (!started.ok()) break;
  }
  if (started.ok()) {
    response = Call("POST", absl::StrCat("/containers/", id, "/start"));
    if (!response.ok()) {
      started = response.status();
    } else if (response->status != 204 && response->status != 304) {
      started = ErrorOf(*response, absl::StrCat("starting ", name));
    }
  }
  if (!started.ok()) {
    // A half-made replica helps nobody.
    if (absl::Status s = Remove(id, /*force=*/true); !s.ok()) {
      LogWarning("cannot remove a container that did not start",
                 {{"chainlet", options_.target}, {"container", name}, {"error",
                                                                        std::string(s.message())}});
    }
    return started;
  }
  return Replica{id, serial, absl::StrCat("container ", name, " (", Short(id), ")")};
}

absl::Status DockerBackend::Stop(const Replica& replica, absl::Duration drain_period) {
  const int64_t seconds = static_cast<int64_t>(
      std::ceil(absl::ToDoubleSeconds(std::max(drain_period, absl::ZeroDuration()))));
  // Containers the actuator created go once stopped; another (Compose's) is kept to clone.
  const bool remove = replica.serial > 0;
  stoppers_.Schedule([this, replica, seconds, remove] {
    absl::StatusOr<HttpClientResponse> response =
        Call("POST", absl::StrCat("/containers/", replica.id, "/stop?t=", seconds), "",
             options_.call_timeout + absl::Seconds(seconds));
    absl::Status status;
    if (!response.ok()) {
      status = response.status();
    } else if (response->status != 204 && response->status != 304 && response->status != 404) {
      status = ErrorOf(*response, absl::StrCat("stopping ", replica.description));
    } else if (remove) {
      status = Remove(replica.id, /*force=*/false);
    }
    if (!status.ok()) {
      // The reconciler kills it at the end of its drain period if it is still there.
      LogWarning("stopping a replica failed", {{"chainlet", options_.target},
                                               {"replica", replica.description},
                                               {"error", std::string(status.message())}});
    }
  });
  return absl::OkStatus();
}

absl::Status DockerBackend::Kill(const Replica& replica) {
  if (replica.serial > 0) return Remove(replica.id, /*force=*/true);
  absl::StatusOr<HttpClientResponse> response =
      Call("POST", absl::StrCat("/containers/", replica.id, "/kill"));
  if (!response.ok()) return response.status();
  if (response->status == 204 || response->status == 404 || response->status == 409) {
    return absl::OkStatus();  // 409: it is not running any more
  }
  return ErrorOf(*response, absl::StrCat("killing ", replica.description));
}

}  // namespace chainscale
