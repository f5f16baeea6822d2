// Actuator: chainscale-actuator put together (DESIGN §12). Each --target gets a backend
// (local processes or Docker containers) and a Reconciler with a thread of its own; each
// chain environment named by a target gets one DecisionFollower on the control plane's
// decision feed; the HTTP port serves /metrics (per target: desired and running replicas,
// starts, stops, kills, failures, whether the backend works) and /healthz.
//
// Stopping the actuator never stops a replica: replicas run on, and the next actuator
// adopts them.
#ifndef CHAINSCALE_TOOLS_ACTUATOR_ACTUATOR_H_
#define CHAINSCALE_TOOLS_ACTUATOR_ACTUATOR_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/backoff.h"
#include "common/http_server.h"
#include "common/metrics.h"
#include "common/tls.h"
#include "tools/actuator/backend.h"
#include "tools/actuator/decision_follower.h"
#include "tools/actuator/reconciler.h"
#include "tools/actuator/target_spec.h"

namespace chainscale {

struct ActuatorOptions {
  std::string control_plane = "127.0.0.1:50051";
  std::string api_key;
  // tls.ca verifies the control plane (TLS when set); cert and key are the client
  // certificate it may ask for, and make the HTTP port serve HTTPS.
  TlsFiles tls;
  std::string http_listen = "127.0.0.1:8090";  // /metrics and /healthz; port 0 picks one
  int http_max_connections = 512;
  std::vector<TargetSpec> targets;
  // The process backend's state (and its replicas' logs).
  std::string state_dir = "./data/actuator";
  std::string docker_host = "unix:///var/run/docker.sock";
  ReconcilerOptions reconcile;
  BackoffOptions reconnect = {absl::Seconds(1), 1.6, absl::Seconds(30), 0.2};
};

class Actuator {
 public:
  // INVALID_ARGUMENT without targets, for a chainlet named twice or a backend that cannot
  // be made (a command template that does not split, a docker_host that is not a unix
  // socket); UNAVAILABLE when the HTTP port cannot be bound.
  static absl::StatusOr<std::unique_ptr<Actuator>> Start(ActuatorOptions options);
  ~Actuator();

  int http_port() const { return http_port_; }
  // Stops following and reconciling (a backend call under way finishes first); replicas
  // keep running. Idempotent.
  void Shutdown();

 private:
  struct Target {
    TargetSpec spec;
    std::unique_ptr<Backend> backend;
    std::unique_ptr<Reconciler> reconciler;
    std::thread thread;
  };

  explicit Actuator(ActuatorOptions options) : options_(std::move(options)) {}
  absl::Status StartAll();
  void CollectMetrics(std::string* out) const;

  const ActuatorOptions options_;
  Metrics metrics_;
  std::vector<std::unique_ptr<Target>> targets_;
  std::vector<std::unique_ptr<DecisionFollower>> followers_;
  std::unique_ptr<HttpServer> http_;
  std::atomic<bool> serving_{false};
  int http_port_ = 0;
  bool shut_down_ = false;
};

}  // namespace chainscale

#endif  // CHAINSCALE_TOOLS_ACTUATOR_ACTUATOR_H_
