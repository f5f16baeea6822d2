// chainscale: a command-line client for the control plane and the agent.
//
//   chainscale [flags] METHOD ['JSON request']
//   chainscale [flags] watch          a live view of the agent's decisions
//   chainscale --from=control-plane watch   ... of the control plane's stored decisions
#include <signal.h>

#include <cstdlib>
#include <iostream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_join.h"
#include "common/mutex_mode.h"
#include "common/process.h"
#include "common/tls.h"
#include "tools/cli/commands.h"

ABSL_FLAG(std::string, control_plane, "127.0.0.1:50051", "control plane address");
ABSL_FLAG(std::string, agent, "127.0.0.1:50061", "agent address");
ABSL_FLAG(std::string, api_key, "", "API key (default: the first of CHAINSCALE_API_KEYS)");
ABSL_FLAG(std::string, tls_ca, "", "PEM roots to verify the servers' TLS certificates");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(30), "deadline of a call");
ABSL_FLAG(std::string, from, "agent",
          "where `watch` and WatchScalingDecisions read decisions: \"agent\" (the agent at "
          "--agent: its own decisions, at once) or \"control-plane\" (the control plane at "
          "--control_plane: every agent's stored decisions, the feed that survives agent "
          "failover)");

int main(int argc, char** argv) {
  chainscale::DisableMutexDeadlockDetection();
  // Blocked before gRPC starts its threads, which inherit the mask: a stream then stops on
  // SIGINT or SIGTERM through the waiter below, never by a signal landing on a gRPC thread.
  const sigset_t signals = chainscale::BlockTerminationSignals();
  absl::SetProgramUsageMessage(absl::StrCat(
      "chainscale: calls the chainscale control plane and agent with JSON.\n"
      "  chainscale [flags] METHOD ['JSON request']\n"
      "  chainscale [flags] watch\n"
      "`watch` and WatchScalingDecisions read the agent at --agent; with "
      "--from=control-plane they read the control plane's stored decision feed "
      "(ControlPlane/WatchScalingDecisions) at --control_plane.\n"
      "Methods: ",
      absl::StrJoin(chainscale::MethodNames(), ", "),
      "\nExample:\n"
      "  chainscale GetChainEnvironment '{\"chain_id\": \"demo\", \"env_name\": \"production\"}'"));
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 2 || args.size() > 3) {
    std::cerr << "usage: chainscale [flags] METHOD ['JSON request'] | watch (--help)\n";
    return 2;
  }
  chainscale::CliOptions options;
  options.control_plane = absl::GetFlag(FLAGS_control_plane);
  options.agent = absl::GetFlag(FLAGS_agent);
  options.api_key = chainscale::ClientApiKey(absl::GetFlag(FLAGS_api_key));
  options.timeout = absl::GetFlag(FLAGS_timeout);
  const std::string from = absl::GetFlag(FLAGS_from);
  if (from == "control-plane") {
    options.decisions_from = chainscale::CliOptions::DecisionSource::kControlPlane;
  } else if (from != "agent") {
    std::cerr << "--from must be \"agent\" or \"control-plane\", not \"" << from << "\"\n";
    return 2;
  }
  auto credentials = chainscale::MakeChannelCredentials({"", "", absl::GetFlag(FLAGS_tls_ca)});
  if (!credentials.ok()) {
    std::cerr << credentials.status().message() << "\n";
    return 2;
  }
  options.credentials = *credentials;
  const std::string method = args[1];
  const std::string json = args.size() == 3 ? args[2] : "";
  if (method != "watch" && method != "WatchScalingDecisions") {
    pthread_sigmask(SIG_UNBLOCK, &signals, nullptr);  // Ctrl-C ends a call at once
    return chainscale::RunMethod(options, method, json, std::cout, std::cerr);
  }
  // Streams run until SIGINT or SIGTERM.
  std::atomic<bool> stop{false};
  std::thread waiter([&] {
    chainscale::AwaitTerminationSignal(signals);
    stop = true;
  });
  const int code = method == "watch"
                       ? chainscale::LiveView(options, stop, std::cout, std::cerr)
                       : chainscale::Watch(options, json, stop, std::cout, std::cerr);
  if (!stop.exchange(true)) kill(getpid(), SIGTERM);  // wake the waiter
  waiter.join();
  return code;
}
