// chainscale-replica: turns flags into ReplicaOptions, serves until SIGTERM or SIGINT,
// then drains (tools/replica/replica_server.h) and exits 0.
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/mutex_mode.h"
#include "common/process.h"
#include "common/tls.h"
#include "tools/replica/replica_server.h"

ABSL_FLAG(std::string, http_listen, "127.0.0.1:8000",
          "HTTP address for /v1/completions, /metrics and /healthz, host:port");
ABSL_FLAG(bool, reuse_port, false,
          "share --http_listen with other replicas started with this flag (SO_REUSEPORT): "
          "connections are spread over them");
ABSL_FLAG(std::string, model_name, "chainscale-replica",
          "served model name: the model of every answer and the model_name label");
ABSL_FLAG(int32_t, max_concurrency, 8, "requests running at once");
ABSL_FLAG(int32_t, max_queue, 64,
          "requests waiting beyond those, in arrival order; more are answered 503 at once");
ABSL_FLAG(absl::Duration, overhead, absl::Milliseconds(50), "service time: per request");
ABSL_FLAG(absl::Duration, per_context_token, absl::Microseconds(200),
          "service time: prefill per prompt token (tokens: prompt bytes / 4)");
ABSL_FLAG(absl::Duration, per_generated_token, absl::Milliseconds(20),
          "service time: decode per generated token (max_tokens)");
ABSL_FLAG(double, time_scale, 1.0,
          "run this many times faster than the model (1000 for tests; the load generator's "
          "--time_scale)");
ABSL_FLAG(int64_t, max_model_len, 32768,
          "prompt and generated tokens one request may have in all");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(30),
          "on SIGTERM, time held requests get to finish; the rest are answered 503");
ABSL_FLAG(std::vector<std::string>, agent, {},
          "agents to report the load to, host:port, comma-separated, tried in order; empty: "
          "no reports");
ABSL_FLAG(std::string, chain_id, "", "chain of this replica's chainlet (with --agent)");
ABSL_FLAG(std::string, env_name, "production", "environment of the chainlet (with --agent)");
ABSL_FLAG(std::string, chainlet_name, "", "chainlet this replica serves (with --agent)");
ABSL_FLAG(std::string, source_id, "", "this replica's id in its reports (default: hostname-pid)");
ABSL_FLAG(absl::Duration, report_interval, absl::Seconds(1), "time between reports");
ABSL_FLAG(std::string, api_key, "",
          "API key for the agents (or the first of CHAINSCALE_API_KEYS)");
ABSL_FLAG(std::string, tls_ca, "", "PEM roots to verify the agents' TLS certificate");

namespace {

int Fail(const absl::Status& status) {
  chainscale::LogError("replica failed to start", {{"error", std::string(status.message())}});
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  chainscale::DisableMutexDeadlockDetection();
  absl::SetProgramUsageMessage(
      "chainscale-replica: a model-replica stand-in serving POST /v1/completions.\n"
      "  chainscale-replica --max_concurrency 4 --agent 127.0.0.1:50061 --chain_id demo "
      "--chainlet_name HelloWorld");
  absl::ParseCommandLine(argc, argv);
  const sigset_t signals = chainscale::BlockTerminationSignals();

  chainscale::ReplicaOptions options;
  options.http_listen = absl::GetFlag(FLAGS_http_listen);
  options.reuse_port = absl::GetFlag(FLAGS_reuse_port);
  options.model_name = absl::GetFlag(FLAGS_model_name);
  options.scheduler.max_concurrency = absl::GetFlag(FLAGS_max_concurrency);
  options.scheduler.max_queue = absl::GetFlag(FLAGS_max_queue);
  options.scheduler.model.overhead = absl::GetFlag(FLAGS_overhead);
  options.scheduler.model.per_context_token = absl::GetFlag(FLAGS_per_context_token);
  options.scheduler.model.per_generated_token = absl::GetFlag(FLAGS_per_generated_token);
  options.scheduler.time_scale = absl::GetFlag(FLAGS_time_scale);
  options.max_model_len = absl::GetFlag(FLAGS_max_model_len);
  options.drain_timeout = absl::GetFlag(FLAGS_drain_timeout);
  if (!absl::GetFlag(FLAGS_agent).empty()) {
    chainscale::ReplicaReports reports;
    reports.stream.agents = absl::GetFlag(FLAGS_agent);
    auto credentials = chainscale::MakeChannelCredentials({"", "", absl::GetFlag(FLAGS_tls_ca)});
    if (!credentials.ok()) return Fail(credentials.status());
    reports.stream.credentials = *credentials;
    reports.stream.api_key = chainscale::ClientApiKey(absl::GetFlag(FLAGS_api_key));
    reports.chain_id = absl::GetFlag(FLAGS_chain_id);
    reports.env_name = absl::GetFlag(FLAGS_env_name);
    reports.chainlet_name = absl::GetFlag(FLAGS_chainlet_name);
    reports.source_id = absl::GetFlag(FLAGS_source_id);
    if (reports.source_id.empty()) {
      char host[256] = {};
      gethostname(host, sizeof(host) - 1);
      reports.source_id = absl::StrCat(host, "-", getpid());
    }
    reports.interval = absl::GetFlag(FLAGS_report_interval);
    options.reports = std::move(reports);
  }

  absl::StatusOr<std::unique_ptr<chainscale::ReplicaServer>> server =
      chainscale::ReplicaServer::Start(std::move(options));
  if (!server.ok()) return Fail(server.status());

  chainscale::LogInfo("shutting down",
                      {{"signal", chainscale::AwaitTerminationSignal(signals)}});
  (*server)->Shutdown();
  chainscale::LogInfo("replica stopped");
  return 0;
}
