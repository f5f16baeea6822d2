// chainscale-agent: turns flags into AgentOptions, starts the agent and shuts it down
// cleanly on SIGTERM or SIGINT.
#include <signal.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "agent/server.h"
#include "common/log.h"
#include "common/mutex_mode.h"
#include "common/process.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50061", "gRPC address, host:port");
ABSL_FLAG(std::string, http_listen, "127.0.0.1:8081",
          "HTTP address for /metrics and /healthz, host:port; empty disables");
ABSL_FLAG(int32_t, http_max_connections, 512,
          "connections the HTTP port holds at once; more are answered 503");
ABSL_FLAG(std::string, api_keys_file, "",
          "file of API keys for reporters and readers, one per line (or set "
          "CHAINSCALE_API_KEYS, comma-separated)");
ABSL_FLAG(bool, insecure, false, "allow starting without API keys (local demos only)");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain; enables TLS on --listen");
ABSL_FLAG(std::string, tls_key, "", "PEM private key for --tls_cert");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM roots: clients must present a certificate they sign, and the control "
          "plane's certificate is verified against them");
ABSL_FLAG(std::string, control_plane, "127.0.0.1:50051", "control plane address, host:port");
ABSL_FLAG(std::string, agent_id, "", "this agent's id (default: hostname-pid)");
ABSL_FLAG(std::string, agent_token, "",
          "token for the control plane's Sync stream (or set CHAINSCALE_AGENT_TOKEN)");
ABSL_FLAG(std::string, selector, "",
          "chain environments served: comma-separated chain or chain/environment; empty "
          "serves all");
ABSL_FLAG(absl::Duration, decision_interval, absl::Seconds(1), "time between decisions");
ABSL_FLAG(std::string, advertise, "",
          "host:port where other agents and reporters reach this agent; empty: the --listen "
          "host (or this host's name when listening on every address) with the bound port");
ABSL_FLAG(absl::Duration, lease_ttl, absl::Seconds(10),
          "hold every count after this long without word from the control plane (its "
          "--lease_ttl): another agent may own the work by then");
ABSL_FLAG(absl::Duration, report_staleness, absl::Seconds(10),
          "a source's last report counts this long, then it counts 0");
ABSL_FLAG(size_t, metrics_max_chainlets, 1000,
          "chainlets with their own series on /metrics (the first in key order); "
          "chainscale_metrics_chainlets_omitted counts the rest");

namespace {

int Fail(const absl::Status& status) {
  chainscale::LogError("agent failed to start", {{"error", std::string(status.message())}});
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  chainscale::DisableMutexDeadlockDetection();
  absl::SetProgramUsageMessage(
      "chainscale agent: takes load reports and decides replica counts.\n"
      "  chainscale-agent --api_keys_file keys.txt --control_plane HOST:PORT "
      "--agent_token TOKEN");
  absl::ParseCommandLine(argc, argv);

  const sigset_t signals = chainscale::BlockTerminationSignals();

  chainscale::AgentOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.http_listen = absl::GetFlag(FLAGS_http_listen);
  options.http_max_connections = absl::GetFlag(FLAGS_http_max_connections);
  options.insecure = absl::GetFlag(FLAGS_insecure);
  options.tls = {absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key),
                 absl::GetFlag(FLAGS_tls_ca)};
  options.control_plane = absl::GetFlag(FLAGS_control_plane);
  options.agent_id = absl::GetFlag(FLAGS_agent_id);
  if (options.agent_id.empty()) {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    options.agent_id = absl::StrCat(host, "-", getpid());
  }
  options.agent_token = absl::GetFlag(FLAGS_agent_token);
  if (options.agent_token.empty()) options.agent_token = chainscale::EnvOrEmpty("CHAINSCALE_AGENT_TOKEN");
  absl::StatusOr<chainscale::v1::Selector> selector =
      chainscale::ParseSelector(absl::GetFlag(FLAGS_selector));
  if (!selector.ok()) return Fail(selector.status());
  options.selector = *selector;
  options.decision_interval = absl::GetFlag(FLAGS_decision_interval);
  options.report_staleness = absl::GetFlag(FLAGS_report_staleness);
  options.advertise_address = absl::GetFlag(FLAGS_advertise);
  options.lease_ttl = absl::GetFlag(FLAGS_lease_ttl);
  options.metrics_max_chainlets = absl::GetFlag(FLAGS_metrics_max_chainlets);
  absl::StatusOr<chainscale::ApiKeys> keys = chainscale::ApiKeys::Load(
      absl::GetFlag(FLAGS_api_keys_file), chainscale::EnvOrEmpty("CHAINSCALE_API_KEYS"));
  if (!keys.ok()) return Fail(keys.status());
  options.api_keys = *std::move(keys);

  absl::StatusOr<std::unique_ptr<chainscale::AgentServer>> server =
      chainscale::AgentServer::Start(std::move(options));
  if (!server.ok()) return Fail(server.status());

  chainscale::LogInfo("shutting down",
                      {{"signal", chainscale::AwaitTerminationSignal(signals)}});
  (*server)->Shutdown();
  chainscale::LogInfo("agent stopped");
  return 0;
}
