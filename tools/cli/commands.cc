#include "tools/cli/commands.h"

#include <google/protobuf/util/json_util.h>
#include <grpcpp/support/error_details.h>

#include <functional>
#include <map>
#include <optional>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "chainscale/v1/agent.grpc.pb.h"
#include "chainscale/v1/control_plane.grpc.pb.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace chainscale {
namespace {

using google::protobuf::Message;
using google::protobuf::util::JsonParseOptions;
using google::protobuf::util::JsonPrintOptions;

std::string ToJson(const Message& message, bool pretty = true) {
  JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.add_whitespace = pretty;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

std::unique_ptr<grpc::ClientContext> Context(const CliOptions& options) {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!options.api_key.empty()) {
    context->AddMetadata("authorization", absl::StrCat("Api-Key ", options.api_key));
  }
  context->set_deadline(absl::ToChronoTime(absl::Now() + options.timeout));
  return context;
}

int ReportError(const grpc::Status& status, std::ostream& err) {
  static const char* kCodes[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
                                 "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
                                 "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  const int code = status.error_code();
  err << "ERROR: " << (code >= 0 && code <= 16 ? kCodes[code] : "UNKNOWN") << ": "
      << status.error_message() << "\n";
  google::rpc::Status details;
  if (grpc::ExtractErrorDetails(status, &details).ok()) {
    for (const auto& any : details.details()) {
      google::rpc::BadRequest bad_request;
      if (!any.UnpackTo(&bad_request)) continue;
      for (const auto& v : bad_request.field_violations()) {
        err << "  " << v.field() << ": " << v.description() << "\n";
      }
    }
  }
  return 1;
}

// One unary call: parse the JSON into Req, call, print Resp.
template <typename Stub, typename Req, typename Resp>
int Call(const CliOptions& options, Stub* stub,
         grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
         const std::string& json, std::ostream& out, std::ostream& err) {
  Req request;
  JsonParseOptions parse;
  auto parsed = google::protobuf::util::JsonStringToMessage(json, &request, parse);
  if (!parsed.ok()) {
    err << "ERROR: the request is not valid JSON for " << Req::descriptor()->full_name() << ": "
        << parsed.message() << "\n";
    return 2;
  }
  Resp response;
  grpc::Status status = (stub->*method)(Context(options).get(), request, &response);
  if (!status.ok()) return ReportError(status, err);
  out << ToJson(response) << "\n";
  return 0;
}

using Runner = std::function<int(const CliOptions&, const std::string&, std::ostream&,
                                 std::ostream&)>;

template <typename Service, typename Stub, typename Req, typename Resp>
Runner Method(bool on_agent, grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*)) {
  return [on_agent, method](const CliOptions& options, const std::string& json,
                            std::ostream& out, std::ostream& err) {
    auto channel = grpc::CreateChannel(on_agent ? options.agent : options.control_plane,
                                       options.credentials);
    auto stub = Service::NewStub(channel);
    return Call(options, stub.get(), method, json, out, err);
  };
}

const std::map<std::string, Runner>& Methods() {
  using CP = v1::ControlPlane;
  using CPStub = v1::ControlPlane::Stub;
  using A = v1::Agent;
  using AStub = v1::Agent::Stub;
  static const auto* methods = new std::map<std::string, Runner>{
      {"CreateChain", Method<CP>(false, &CPStub::CreateChain)},
      {"GetChain", Method<CP>(false, &CPStub::GetChain)},
      {"ListChains", Method<CP>(false, &CPStub::ListChains)},
      {"DeleteChain", Method<CP>(false, &CPStub::DeleteChain)},
      {"CreateEnvironment", Method<CP>(false, &CPStub::CreateEnvironment)},
      {"DeleteEnvironment", Method<CP>(false, &CPStub::DeleteEnvironment)},
      {"GetChainEnvironment", Method<CP>(false, &CPStub::GetChainEnvironment)},
      {"UpdateChainletEnvironmentAutoscalingSettings",
       Method<CP>(false, &CPStub::UpdateChainletEnvironmentAutoscalingSettings)},
      {"ReportLoad", Method<A>(true, &AStub::ReportLoad)},
      {"GetScalingDecision", Method<A>(true, &AStub::GetScalingDecision)},
      {"ListScalingDecisions", Method<A>(true, &AStub::ListScalingDecisions)},
  };
  return *methods;
}

}  // namespace

std::vector<std::string> MethodNames() {
  std::vector<std::string> names;
  for (const auto& [name, runner] : Methods()) names.push_back(name);
  names.push_back("WatchScalingDecisions");
  return names;
}

int RunMethod(const CliOptions& options, const std::string& method, const std::string& json,
              std::ostream& out, std::ostream& err) {
  auto it = Methods().find(method);
  if (it == Methods().end()) {
    err << "ERROR: unknown method \"" << method << "\"; see --help\n";
    return 2;
  }
  return it->second(options, json.empty() ? "{}" : json, out, err);
}

namespace {

// The watch stream of the chosen source: each message as JSON, and the decision it
// carries (none on the control plane's end-of-initial-state message).
class DecisionStream {
 public:
  virtual ~DecisionStream() = default;
  // False when the stream has ended.
  virtual bool Read(std::string* json, std::optional<v1::ScalingDecision>* decision) = 0;
  virtual grpc::Status Finish() = 0;
};

template <typename Response>
class DecisionStreamOf final : public DecisionStream {
 public:
  explicit DecisionStreamOf(std::unique_ptr<grpc::ClientReader<Response>> reader)
      : reader_(std::move(reader)) {}
  bool Read(std::string* json, std::optional<v1::ScalingDecision>* decision) override {
    Response message;
    if (!reader_->Read(&message)) return false;
    *json = ToJson(message, /*pretty=*/false);
    *decision = DecisionOf(message);
    return true;
  }
  grpc::Status Finish() override { return reader_->Finish(); }

 private:
  static std::optional<v1::ScalingDecision> DecisionOf(const v1::ScalingDecision& d) { return d; }
  static std::optional<v1::ScalingDecision> DecisionOf(const v1::WatchDecisionFeedResponse& m) {
    if (!m.has_decision()) return std::nullopt;
    return m.decision();
  }
  std::unique_ptr<grpc::ClientReader<Response>> reader_;
};

// Opens the watch on the agent or the control plane. `json` is the request (empty: the
// default); `include_unchanged` asks the agent for every tick.
absl::StatusOr<std::unique_ptr<DecisionStream>> OpenDecisionStream(
    const CliOptions& options, grpc::ClientContext* context, const std::string& json,
    bool include_unchanged) {
  if (!options.api_key.empty()) {
    context->AddMetadata("authorization", absl::StrCat("Api-Key ", options.api_key));
  }
  const std::string request_json = json.empty() ? "{}" : json;
  if (options.decisions_from == CliOptions::DecisionSource::kControlPlane) {
    v1::WatchDecisionFeedRequest request;
    if (!google::protobuf::util::JsonStringToMessage(request_json, &request).ok()) {
      return absl::InvalidArgumentError(
          "the request is not valid JSON for WatchDecisionFeedRequest");
    }
    auto stub =
        v1::ControlPlane::NewStub(grpc::CreateChannel(options.control_plane, options.credentials));
    return std::make_unique<DecisionStreamOf<v1::WatchDecisionFeedResponse>>(
        stub->WatchScalingDecisions(context, request));
  }
  v1::WatchScalingDecisionsRequest request;
  if (!google::protobuf::util::JsonStringToMessage(request_json, &request).ok()) {
    return absl::InvalidArgumentError(
        "the request is not valid JSON for WatchScalingDecisionsRequest");
  }
  if (include_unchanged) request.set_include_unchanged(true);
  auto stub = v1::Agent::NewStub(grpc::CreateChannel(options.agent, options.credentials));
  return std::make_unique<DecisionStreamOf<v1::ScalingDecision>>(
      stub->WatchScalingDecisions(context, request));
}

}  // namespace

int Watch(const CliOptions& options, const std::string& json, const std::atomic<bool>& stop,
          std::ostream& out, std::ostream& err) {
  grpc::ClientContext context;
  absl::StatusOr<std::unique_ptr<DecisionStream>> stream =
      OpenDecisionStream(options, &context, json, /*include_unchanged=*/false);
  if (!stream.ok()) {
    err << "ERROR: " << stream.status().message() << "\n";
    return 2;
  }
  std::atomic<bool> ended{false};
  std::thread canceller([&] {
    while (!stop.load() && !ended.load()) absl::SleepFor(absl::Milliseconds(100));
    context.TryCancel();
  });
  std::string line;
  std::optional<v1::ScalingDecision> decision;
  while ((*stream)->Read(&line, &decision)) out << line << std::endl;
  grpc::Status status = (*stream)->Finish();
  ended = true;
  canceller.join();
  if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
    return ReportError(status, err);
  }
  return 0;
}

int LiveView(const CliOptions& options, const std::atomic<bool>& stop, std::ostream& out,
             std::ostream& err) {
  grpc::ClientContext context;
  // From the agent, every tick, so the averages stay fresh; the control plane's feed
  // carries the decisions agents store (when a decision changes).
  absl::StatusOr<std::unique_ptr<DecisionStream>> stream =
      OpenDecisionStream(options, &context, "", /*include_unchanged=*/true);
  if (!stream.ok()) {
    err << "ERROR: " << stream.status().message() << "\n";
    return 2;
  }
  const bool from_agent = options.decisions_from == CliOptions::DecisionSource::kAgent;
  absl::Mutex mu;
  std::map<std::string, v1::ScalingDecision> latest;
  grpc::Status status;
  std::atomic<bool> ended{false};
  std::thread reader_thread([&] {
    std::string json;
    std::optional<v1::ScalingDecision> d;
    while ((*stream)->Read(&json, &d)) {
      if (!d.has_value()) continue;
      absl::MutexLock lock(&mu);
      latest[absl::StrCat(d->chain_id(), "/", d->env_name(), "/", d->chainlet_name())] = *d;
    }
    status = (*stream)->Finish();
    ended = true;
  });
  while (!stop.load() && !ended.load()) {
    std::string screen = "\033[H\033[2J";  // home, clear
    absl::StrAppend(&screen,
                    absl::StrFormat("chainscale: decisions from %s %s   %s   (Ctrl-C stops)\n\n",
                                    from_agent ? "agent" : "the control plane at",
                                    from_agent ? options.agent : options.control_plane,
                                    absl::FormatTime("%H:%M:%S", absl::Now(),
                                                     absl::LocalTimeZone())),
                    absl::StrFormat("%-32s %8s  %-9s %8s  %s\n", "CHAINLET", "REPLICAS",
                                    "STATUS", "AVG LOAD", "WHY"));
    {
      absl::MutexLock lock(&mu);
      for (const auto& [key, d] : latest) {
        std::string why = d.reason();
        if (why.size() > 70) why = why.substr(0, 67) + "...";
        absl::StrAppend(&screen,
                        absl::StrFormat("%-32s %8d  %-9s %8.1f  %s%s\n", key,
                                        d.desired_replicas(),
                                        v1::ScalingDecision::Status_Name(d.status()),
                                        d.avg_in_flight_requests(), d.capped() ? "[capped] " : "",
                                        why));
      }
      if (latest.empty()) absl::StrAppend(&screen, "(waiting for the first decisions)\n");
    }
    out << screen << std::flush;
    for (int i = 0; i < 10 && !stop.load() && !ended.load(); ++i) {
      absl::SleepFor(absl::Milliseconds(100));
    }
  }
  context.TryCancel();
  reader_thread.join();
  if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
    return ReportError(status, err);
  }
  return 0;
}

}  // namespace chainscale
