// The chainscale CLI's commands: every unary RPC of both services called with a JSON
// request (protobuf's JSON mapping, proto field names) and answered in JSON, the decision
// watch stream as JSON lines, and a live terminal view of the decisions.
#ifndef CHAINSCALE_TOOLS_CLI_COMMANDS_H_
#define CHAINSCALE_TOOLS_CLI_COMMANDS_H_

#include <atomic>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

namespace chainscale {

struct CliOptions {
  std::string control_plane = "127.0.0.1:50051";
  std::string agent = "127.0.0.1:50061";
  std::string api_key;
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  absl::Duration timeout = absl::Seconds(30);
  // Where `watch` and WatchScalingDecisions read decisions: the agent's own watch (the
  // decisions it makes, every tick with include_unchanged), or the control plane's
  // stored decision feed (every agent's, surviving agent failover).
  enum class DecisionSource { kAgent, kControlPlane };
  DecisionSource decisions_from = DecisionSource::kAgent;
};

// Runs METHOD with the JSON request `json` ("{}" when empty). Writes the JSON answer to
// `out`, or "ERROR: CODE: message" and any field violations to `err`. Returns the exit
// code: 0 on success, 1 for an RPC error, 2 for a usage error.
int RunMethod(const CliOptions& options, const std::string& method, const std::string& json,
              std::ostream& out, std::ostream& err);

// Streams WatchScalingDecisions as JSON lines until `stop` or the stream ends: the agent's
// (ScalingDecision lines) or the control plane's (WatchDecisionFeedResponse lines), as
// options.decisions_from says.
int Watch(const CliOptions& options, const std::string& json, const std::atomic<bool>& stop,
          std::ostream& out, std::ostream& err);

// A live table of every chainlet's decision, redrawn every second until `stop`, from the
// source options.decisions_from names.
int LiveView(const CliOptions& options, const std::atomic<bool>& stop, std::ostream& out,
             std::ostream& err);

// The methods RunMethod knows, for --help.
std::vector<std::string> MethodNames();

}  // namespace chainscale

#endif  // CHAINSCALE_TOOLS_CLI_COMMANDS_H_
