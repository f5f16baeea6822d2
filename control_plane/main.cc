// chainscale-control-plane: turns flags into ControlPlaneOptions, starts the server and
// shuts it down cleanly on SIGTERM or SIGINT.
#include <signal.h>

#include <cstdlib>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/mutex_mode.h"
#include "common/process.h"
#include "control_plane/server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051", "gRPC address, host:port");
ABSL_FLAG(std::string, http_listen, "127.0.0.1:8080",
          "HTTP address for the REST gateway, /metrics and /healthz, host:port; empty "
          "disables");
ABSL_FLAG(int32_t, http_max_connections, 512,
          "connections the HTTP port holds at once; more are answered 503");
ABSL_FLAG(std::string, data_dir, "./data/control-plane", "RocksDB data directory");
ABSL_FLAG(std::string, api_keys_file, "",
          "file of management API keys, one per line (or set CHAINSCALE_API_KEYS, "
          "comma-separated)");
ABSL_FLAG(std::string, agent_tokens_file, "",
          "file of agent tokens accepted on the Sync stream, one per line (or set "
          "CHAINSCALE_AGENT_TOKEN)");
ABSL_FLAG(bool, insecure, false, "allow starting without API keys (local demos only)");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain; enables TLS");
ABSL_FLAG(std::string, tls_key, "", "PEM private key for --tls_cert");
ABSL_FLAG(std::string, tls_ca, "", "PEM roots; clients must present a certificate they sign");
ABSL_FLAG(absl::Duration, ack_timeout, absl::Seconds(2),
          "how long an update waits for agents to acknowledge it before answering QUEUED");
ABSL_FLAG(absl::Duration, lease_ttl, absl::Seconds(10),
          "how long an agent whose Sync stream ended keeps its chain environments");
ABSL_FLAG(int64_t, log_retention, 100000, "revision-log entries kept for resuming agents");
ABSL_FLAG(int64_t, min_free_disk_mb, 0,
          "writes are refused while the disk of --data_dir has less free space than this, in "
          "MiB (0: 10% of that filesystem, at least 8 and at most 64 MiB)");
ABSL_FLAG(int32_t, max_replica_limit, 1000, "largest max_replica a setting may have");
ABSL_FLAG(double, rest_rate_limit, 100,
          "REST gateway requests per second per API key (a burst of one second's worth); "
          "0 disables the limit");

namespace {

int Fail(const absl::Status& status) {
  chainscale::LogError("control plane failed to start", {{"error", std::string(status.message())}});
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  chainscale::DisableMutexDeadlockDetection();
  absl::SetProgramUsageMessage(
      "chainscale control plane: stores autoscaling settings and serves the management API.\n"
      "  chainscale-control-plane --api_keys_file keys.txt [--data_dir DIR] [--listen ADDR]");
  absl::ParseCommandLine(argc, argv);

  const sigset_t signals = chainscale::BlockTerminationSignals();

  chainscale::ControlPlaneOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.http_listen = absl::GetFlag(FLAGS_http_listen);
  options.http_max_connections = absl::GetFlag(FLAGS_http_max_connections);
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.insecure = absl::GetFlag(FLAGS_insecure);
  options.tls = {absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key),
                 absl::GetFlag(FLAGS_tls_ca)};
  options.ack_timeout = absl::GetFlag(FLAGS_ack_timeout);
  options.ownership.lease_ttl = absl::GetFlag(FLAGS_lease_ttl);
  options.log_retention = absl::GetFlag(FLAGS_log_retention);
  options.min_free_disk_bytes = absl::GetFlag(FLAGS_min_free_disk_mb) << 20;
  options.registry.settings_limits.max_replica_limit = absl::GetFlag(FLAGS_max_replica_limit);
  options.rest_rate_limit = absl::GetFlag(FLAGS_rest_rate_limit);
  if (options.log_retention < 1) {
    return Fail(absl::InvalidArgumentError("--log_retention must be at least 1"));
  }
  if (options.registry.settings_limits.max_replica_limit < 1) {
    return Fail(absl::InvalidArgumentError("--max_replica_limit must be at least 1"));
  }
  absl::StatusOr<chainscale::ApiKeys> api_keys = chainscale::ApiKeys::Load(
      absl::GetFlag(FLAGS_api_keys_file), chainscale::EnvOrEmpty("CHAINSCALE_API_KEYS"));
  if (!api_keys.ok()) return Fail(api_keys.status());
  options.api_keys = *std::move(api_keys);
  absl::StatusOr<chainscale::ApiKeys> agent_tokens = chainscale::ApiKeys::Load(
      absl::GetFlag(FLAGS_agent_tokens_file), chainscale::EnvOrEmpty("CHAINSCALE_AGENT_TOKEN"));
  if (!agent_tokens.ok()) return Fail(agent_tokens.status());
  options.agent_tokens = *std::move(agent_tokens);

  absl::StatusOr<std::unique_ptr<chainscale::ControlPlaneServer>> server =
      chainscale::ControlPlaneServer::Start(std::move(options));
  if (!server.ok()) return Fail(server.status());

  chainscale::LogInfo("shutting down",
                      {{"signal", chainscale::AwaitTerminationSignal(signals)}});
  (*server)->Shutdown();
  chainscale::LogInfo("control plane stopped");
  return 0;
}
