// chainscale-loadgen: plays replicas of chainlets against agents with a synthetic or
// trace-driven load (tools/loadgen/load_pattern.h), and prints the decisions it sees.
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "common/mutex_mode.h"
#include "common/process.h"
#include "common/tls.h"
#include "tools/loadgen/http_load.h"
#include "tools/loadgen/load_generator.h"

ABSL_FLAG(std::vector<std::string>, agent, {"127.0.0.1:50061"},
          "agent addresses, host:port, comma-separated: the sources are spread over them, and "
          "a batch one cannot take goes to the next");
ABSL_FLAG(std::string, api_key, "", "API key for the agent (or the first of CHAINSCALE_API_KEYS)");
ABSL_FLAG(std::string, tls_ca, "", "PEM roots to verify the agent's TLS certificate");
ABSL_FLAG(std::string, chain_id, "", "chain of the chainlets");
ABSL_FLAG(std::string, env_name, "production", "environment of the chainlets");
ABSL_FLAG(std::vector<std::string>, chainlets, {}, "chainlet names, comma-separated");
ABSL_FLAG(int, sources, 2, "replicas per chainlet; each reports an equal share");
ABSL_FLAG(std::string, pattern, "constant:10",
          "constant:N | step:FROM,TO,AT | ramp:FROM,TO,OVER | spike:BASE,PEAK,AT,FOR | "
          "pulse:LOW,HIGH,LOW_FOR,HIGH_FOR | wave:LOW,HIGH,PERIOD | points:EVERY,V1,V2,... | "
          "trace:FILE");
ABSL_FLAG(absl::Duration, report_interval, absl::Seconds(1), "time between reports");
ABSL_FLAG(absl::Duration, duration, absl::InfiniteDuration(), "stop after this long");
ABSL_FLAG(absl::Duration, overhead, absl::Milliseconds(50), "trace service time: per request");
ABSL_FLAG(absl::Duration, per_context_token, absl::Microseconds(200),
          "trace service time: prefill per context token");
ABSL_FLAG(absl::Duration, per_generated_token, absl::Milliseconds(20),
          "trace service time: decode per generated token");
ABSL_FLAG(bool, report_tokens, false, "also report in-flight tokens (trace patterns)");
ABSL_FLAG(bool, print_decisions, true, "print each decision that changes");
ABSL_FLAG(std::string, http_target, "",
          "send the trace of --pattern=trace:FILE as real HTTP requests (POST /v1/completions) "
          "to the replicas at host:port instead of reporting load; the host may resolve to "
          "many addresses (requests go round robin, re-resolved every --resolve_every)");
ABSL_FLAG(absl::Duration, resolve_every, absl::Seconds(2), "--http_target: re-resolve this often");
ABSL_FLAG(double, time_scale, 1,
          "--http_target: play the trace this many times faster (the replicas' --time_scale)");
ABSL_FLAG(int, http_max_in_flight, 256, "--http_target: requests in flight at once");
ABSL_FLAG(absl::Duration, http_timeout, absl::Seconds(120), "--http_target: per request");
ABSL_FLAG(std::string, model_name, "chainscale-replica", "--http_target: the request's model");
ABSL_FLAG(std::string, summary_json, "",
          "--http_target: also write the summary as one JSON line to this file");

int main(int argc, char** argv) {
  chainscale::DisableMutexDeadlockDetection();
  absl::SetProgramUsageMessage(
      "Plays replicas against chainscale agents, or replays a trace against replicas.\n"
      "  chainscale-loadgen --chain_id demo --chainlets HelloWorld --pattern step:5,25,30s\n"
      "  chainscale-loadgen --http_target replica:8000 --pattern trace:FILE --time_scale 10");
  absl::ParseCommandLine(argc, argv);
  const sigset_t signals = chainscale::BlockTerminationSignals();

  chainscale::LoadGeneratorOptions options;
  options.agents = absl::GetFlag(FLAGS_agent);
  options.api_key = chainscale::ClientApiKey(absl::GetFlag(FLAGS_api_key));
  auto credentials = chainscale::MakeChannelCredentials({"", "", absl::GetFlag(FLAGS_tls_ca)});
  if (!credentials.ok()) {
    std::cerr << credentials.status().message() << "\n";
    return 2;
  }
  options.credentials = *credentials;
  options.chain_id = absl::GetFlag(FLAGS_chain_id);
  options.env_name = absl::GetFlag(FLAGS_env_name);
  options.chainlets = absl::GetFlag(FLAGS_chainlets);
  options.sources = absl::GetFlag(FLAGS_sources);
  options.report_interval = absl::GetFlag(FLAGS_report_interval);
  options.duration = absl::GetFlag(FLAGS_duration);
  options.report_tokens = absl::GetFlag(FLAGS_report_tokens);
  options.print_decisions = absl::GetFlag(FLAGS_print_decisions);
  const bool reporting = absl::GetFlag(FLAGS_http_target).empty();
  if (reporting && (options.agents.empty() || options.chain_id.empty() ||
                    options.chainlets.empty() || options.sources < 1 ||
                    options.report_interval <= absl::ZeroDuration())) {
    std::cerr << "--agent, --chain_id, --chainlets, --sources >= 1 and a positive "
                 "--report_interval are required\n";
    return 2;
  }
  chainscale::ServiceTimeModel model;
  model.overhead = absl::GetFlag(FLAGS_overhead);
  model.per_context_token = absl::GetFlag(FLAGS_per_context_token);
  model.per_generated_token = absl::GetFlag(FLAGS_per_generated_token);
  auto pattern = chainscale::ParseLoadPattern(absl::GetFlag(FLAGS_pattern), model);
  if (!pattern.ok()) {
    std::cerr << pattern.status().message() << "\n";
    return 2;
  }

  std::atomic<bool> stop{false};
  std::thread signal_waiter([&] {
    chainscale::AwaitTerminationSignal(signals);
    stop = true;
  });
  auto wake_signal_waiter = [&] {
    if (!stop.load()) kill(getpid(), SIGTERM);
    signal_waiter.join();
  };
  if (!reporting) {
    const std::string target = absl::GetFlag(FLAGS_http_target);
    const std::string spec = absl::GetFlag(FLAGS_pattern);
    if (!absl::StartsWith(spec, "trace:")) {
      std::cerr << "--http_target replays a trace: give --pattern=trace:FILE\n";
      wake_signal_waiter();
      return 2;
    }
    std::ifstream file(spec.substr(6));
    absl::StatusOr<std::vector<chainscale::TraceRequest>> trace = chainscale::ParseTrace(file);
    if (!file.is_open() || !trace.ok()) {
      std::cerr << (file.is_open() ? std::string(trace.status().message())
                                   : "cannot open " + spec.substr(6))
                << "\n";
      wake_signal_waiter();
      return 2;
    }
    chainscale::HttpLoadOptions http;
    http.target = target;
    http.resolve_every = absl::GetFlag(FLAGS_resolve_every);
    http.time_scale = absl::GetFlag(FLAGS_time_scale);
    http.model = model;
    http.model_name = absl::GetFlag(FLAGS_model_name);
    http.duration = options.duration;
    http.max_in_flight = absl::GetFlag(FLAGS_http_max_in_flight);
    http.request_timeout = absl::GetFlag(FLAGS_http_timeout);
    if (http.time_scale <= 0 || http.max_in_flight < 1) {
      std::cerr << "--time_scale must be positive and --http_max_in_flight at least 1\n";
      wake_signal_waiter();
      return 2;
    }
    chainscale::HttpLoad load(http, *std::move(trace), std::cout);
    const chainscale::HttpLoadSummary summary = load.Run(stop);
    std::cout << "sent " << summary.sent << " requests, " << summary.ok << " answered; "
              << summary.Json() << "\n";
    if (const std::string path = absl::GetFlag(FLAGS_summary_json); !path.empty()) {
      std::ofstream(path) << summary.Json() << "\n";
    }
    wake_signal_waiter();
    return 0;
  }
  chainscale::LoadGenerator generator(options, *std::move(pattern), std::cout);
  generator.Run(stop);
  std::cout << "sent " << generator.reports_sent() << " reports, " << generator.errors()
            << " failed batches\n";
  wake_signal_waiter();
  return 0;
}
