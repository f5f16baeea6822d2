// chainscale-reporter: turns flags into ReporterOptions, starts the reporter and shuts it
// down cleanly on SIGTERM or SIGINT.
#include <signal.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "common/log.h"
#include "common/mutex_mode.h"
#include "common/process.h"
#include "tools/reporter/reporter.h"

ABSL_FLAG(std::string, scrape_url, "",
          "the replica's Prometheus endpoint, http://host:port/path (e.g. "
          "http://127.0.0.1:8000/metrics)");
ABSL_FLAG(absl::Duration, interval, absl::Seconds(1), "time between scrapes (and reports)");
ABSL_FLAG(absl::Duration, scrape_timeout, absl::ZeroDuration(),
          "how long one scrape may take, shorter than --interval; 0: half the interval");
ABSL_FLAG(std::string, preset, "vllm",
          "the replica's server: vllm, sglang, tgi or triton (the metrics each one reads are "
          "in docs/operations.md); empty: --requests_metric alone");
ABSL_FLAG(std::string, requests_metric, "",
          "in-flight requests as a sum of metrics, replacing the preset's: "
          "'name{label=\"value\"} + name2'");
ABSL_FLAG(std::string, tokens_metric, "",
          "in-flight tokens as a sum of metrics, replacing the preset's; 'none' sends no "
          "token count");
ABSL_FLAG(std::string, chain_id, "", "chain of the chainlet the replica serves");
ABSL_FLAG(std::string, env_name, "production", "environment of the chainlet");
ABSL_FLAG(std::string, chainlet_name, "", "the chainlet the replica serves");
ABSL_FLAG(std::string, source_id, "", "this replica's id in reports (default: the hostname)");
ABSL_FLAG(std::vector<std::string>, agents, {"127.0.0.1:50061"},
          "agents, host:port, comma-separated: any takes the reports; the next is tried "
          "when one is unreachable or answers UNAVAILABLE");
ABSL_FLAG(std::string, api_key, "", "API key for the agents (or the first of CHAINSCALE_API_KEYS)");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain: serves HTTPS on --http_listen, and is presented to the "
          "agents with --tls_ca");
ABSL_FLAG(std::string, tls_key, "", "PEM private key for --tls_cert");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM roots: the agents' certificates are verified against them (TLS to the agents)");
ABSL_FLAG(std::string, http_listen, "127.0.0.1:8091",
          "HTTP address for /metrics and /healthz, host:port; empty disables");

int main(int argc, char** argv) {
  chainscale::DisableMutexDeadlockDetection();
  absl::SetProgramUsageMessage(
      "Scrapes a replica's Prometheus endpoint and streams its in-flight load to chainscale "
      "agents.\n"
      "  chainscale-reporter --scrape_url http://127.0.0.1:8000/metrics --preset vllm "
      "--chain_id demo --chainlet_name HelloWorld --agents HOST:PORT");
  absl::ParseCommandLine(argc, argv);
  const sigset_t signals = chainscale::BlockTerminationSignals();

  chainscale::ReporterOptions options;
  options.scrape_url = absl::GetFlag(FLAGS_scrape_url);
  options.interval = absl::GetFlag(FLAGS_interval);
  options.scrape_timeout = absl::GetFlag(FLAGS_scrape_timeout);
  options.preset = absl::GetFlag(FLAGS_preset);
  options.requests_metric = absl::GetFlag(FLAGS_requests_metric);
  options.tokens_metric = absl::GetFlag(FLAGS_tokens_metric);
  options.chain_id = absl::GetFlag(FLAGS_chain_id);
  options.env_name = absl::GetFlag(FLAGS_env_name);
  options.chainlet_name = absl::GetFlag(FLAGS_chainlet_name);
  options.source_id = absl::GetFlag(FLAGS_source_id);
  if (options.source_id.empty()) {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    options.source_id = host;
  }
  options.stream.agents = absl::GetFlag(FLAGS_agents);
  options.stream.api_key = chainscale::ClientApiKey(absl::GetFlag(FLAGS_api_key));
  options.tls = {absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key),
                 absl::GetFlag(FLAGS_tls_ca)};
  options.http_listen = absl::GetFlag(FLAGS_http_listen);

  absl::StatusOr<std::unique_ptr<chainscale::Reporter>> reporter =
      chainscale::Reporter::Start(std::move(options));
  if (!reporter.ok()) {
    chainscale::LogError("reporter failed to start",
                         {{"error", std::string(reporter.status().message())}});
    return 1;
  }
  chainscale::LogInfo("shutting down", {{"signal", chainscale::AwaitTerminationSignal(signals)}});
  (*reporter)->Shutdown();
  chainscale::LogInfo("reporter stopped");
  return 0;
}
