// chainscale-loadgen: plays replicas of chainlets against agents with a synthetic or
// trace-driven load (tools/loadgen/load_pattern.h), and prints the decisions it sees.
#include <signal.h>

#include <cstdlib>
#include <iostream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_split.h"
#include "common/mutex_mode.h"
#include "common/process.h"
#include "common/tls.h"
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

int main(int argc, char** argv) {
  chainscale::DisableMutexDeadlockDetection();
  absl::SetProgramUsageMessage(
      "Plays replicas against a chainscale agent.\n"
      "  chainscale-loadgen --chain_id demo --chainlets HelloWorld --pattern step:5,25,30s");
  absl::ParseCommandLine(argc, argv);
  const sigset_t signals = chainscale::BlockTerminationSignals();

  chainscale::LoadGeneratorOptions options;
  options.agents = absl::GetFlag(FLAGS_agent);
  options.api_key = absl::GetFlag(FLAGS_api_key);
  if (options.api_key.empty()) {
    options.api_key = std::vector<std::string>(
        absl::StrSplit(chainscale::EnvOrEmpty("CHAINSCALE_API_KEYS"), ','))[0];
  }
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
  if (options.agents.empty() || options.chain_id.empty() || options.chainlets.empty() ||
      options.sources < 1 || options.report_interval <= absl::ZeroDuration()) {
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
  chainscale::LoadGenerator generator(options, *std::move(pattern), std::cout);
  generator.Run(stop);
  std::cout << "sent " << generator.reports_sent() << " reports, " << generator.errors()
            << " failed batches\n";
  if (!stop.load()) {
    kill(getpid(), SIGTERM);  // wake the signal waiter
  }
  signal_waiter.join();
  return 0;
}
