// chainscale-actuator: turns flags into ActuatorOptions, starts the actuator and stops it
// on SIGTERM or SIGINT (its replicas keep running).
#include <signal.h>

#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/strip.h"
#include "common/log.h"
#include "common/mutex_mode.h"
#include "common/process.h"
#include "tools/actuator/actuator.h"

ABSL_FLAG(std::string, control_plane, "127.0.0.1:50051", "control plane address, host:port");
ABSL_FLAG(std::string, api_key, "",
          "API key for the control plane (default: the first of CHAINSCALE_API_KEYS)");
ABSL_FLAG(std::string, tls_ca, "", "PEM roots to verify the control plane's certificate");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM client certificate for the control plane; the HTTP port serves HTTPS with it");
ABSL_FLAG(std::string, tls_key, "", "PEM private key for --tls_cert");
ABSL_FLAG(std::string, http_listen, "127.0.0.1:8090",
          "HTTP address for /metrics and /healthz, host:port");
// Declared for --help: main takes every --target out of argv itself (see TakeTargets).
ABSL_FLAG(std::string, target, "",
          "a chainlet to actuate, given once per chainlet: "
          "<chain_id>/<env_name>/<chainlet_name>=process:<command template> (local processes; "
          "{port} and {index} are replaced per copy) or =docker:service=<compose service> or "
          "=docker:label=<key>=<value>, optionally followed by ,template=<container>");
ABSL_FLAG(std::string, state_dir, "./data/actuator",
          "where the process backend records its replicas (and keeps their logs)");
ABSL_FLAG(std::string, docker_host, "unix:///var/run/docker.sock",
          "the Docker daemon's socket, for docker targets");
ABSL_FLAG(absl::Duration, drain_period, absl::Seconds(30),
          "how long a replica asked to stop may take before it is killed");
ABSL_FLAG(absl::Duration, resync_interval, absl::Seconds(5),
          "how often each backend is checked when nothing happens (a replica that died is "
          "replaced)");

namespace {

// Abseil keeps only the last value of a flag given several times; --target is given once
// per chainlet, so every occurrence ("--target=X", "--target X", one dash too) is taken out
// of argv here, before Abseil parses the rest.
std::vector<std::string> TakeTargets(int* argc, char** argv) {
  std::vector<std::string> targets;
  int kept = 1;
  for (int i = 1; i < *argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") {  // the rest are not flags
      while (i < *argc) argv[kept++] = argv[i++];
      break;
    }
    if (absl::ConsumePrefix(&arg, "--") || absl::ConsumePrefix(&arg, "-")) {
      if (absl::ConsumePrefix(&arg, "target=")) {
        targets.emplace_back(arg);
        continue;
      }
      if (arg == "target" && i + 1 < *argc) {
        targets.emplace_back(argv[++i]);
        continue;
      }
    }
    argv[kept++] = argv[i];
  }
  *argc = kept;
  argv[kept] = nullptr;
  return targets;
}

int Fail(const absl::Status& status) {
  chainscale::LogError("actuator failed to start", {{"error", std::string(status.message())}});
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  chainscale::DisableMutexDeadlockDetection();
  absl::SetProgramUsageMessage(
      "chainscale actuator: follows the control plane's decision feed and makes each "
      "chainlet's replica count real.\n"
      "  chainscale-actuator --control_plane HOST:PORT "
      "--target=demo/production/HelloWorld=process:'chainscale-replica "
      "--http_listen=127.0.0.1:{port}'\n"
      "  chainscale-actuator --target=demo/production/HelloWorld=docker:service=replica");
  const std::vector<std::string> target_flags = TakeTargets(&argc, argv);
  absl::ParseCommandLine(argc, argv);

  const sigset_t signals = chainscale::BlockTerminationSignals();

  chainscale::ActuatorOptions options;
  options.control_plane = absl::GetFlag(FLAGS_control_plane);
  options.api_key = chainscale::ClientApiKey(absl::GetFlag(FLAGS_api_key));
  options.tls = {absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key),
                 absl::GetFlag(FLAGS_tls_ca)};
  options.http_listen = absl::GetFlag(FLAGS_http_listen);
  for (const std::string& text : target_flags) {
    absl::StatusOr<chainscale::TargetSpec> target = chainscale::ParseTarget(text);
    if (!target.ok()) return Fail(target.status());
    options.targets.push_back(*std::move(target));
  }
  options.state_dir = absl::GetFlag(FLAGS_state_dir);
  options.docker_host = absl::GetFlag(FLAGS_docker_host);
  options.reconcile.drain_period = absl::GetFlag(FLAGS_drain_period);
  options.reconcile.resync_interval = absl::GetFlag(FLAGS_resync_interval);

  absl::StatusOr<std::unique_ptr<chainscale::Actuator>> actuator =
      chainscale::Actuator::Start(std::move(options));
  if (!actuator.ok()) return Fail(actuator.status());

  chainscale::LogInfo("shutting down; replicas keep running",
                      {{"signal", chainscale::AwaitTerminationSignal(signals)}});
  (*actuator)->Shutdown();
  chainscale::LogInfo("actuator stopped");
  return 0;
}
