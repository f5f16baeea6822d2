// AgentServer: wires the agent together. The SyncClient fills the SettingsCache from the
// control plane; the cache feeds the DecisionLoop; a ticker decides every
// --decision_interval and sends changed decisions back; the AgentService serves reports
// and decisions over gRPC (with health and reflection), and /metrics over HTTP.
#ifndef CHAINSCALE_AGENT_SERVER_H_
#define CHAINSCALE_AGENT_SERVER_H_

#include <grpcpp/server.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/agent_service.h"
#include "agent/decision_loop.h"
#include "agent/forwarder.h"
#include "agent/owner_routes.h"
#include "agent/settings_cache.h"
#include "agent/sync_client.h"
#include "common/auth.h"
#include "common/clock.h"
#include "common/http_server.h"
#include "common/metrics.h"
#include "common/selector.h"
#include "common/tls.h"

namespace chainscale {

struct AgentOptions {
  std::string listen = "127.0.0.1:50061";     // gRPC host:port; port 0 picks one
  std::string http_listen = "127.0.0.1:8081";  // /metrics and /healthz; empty disables
  ApiKeys api_keys;                            // for reporters and decision readers
  bool insecure = false;
  TlsFiles tls;                                // serving; tls.ca also verifies the control plane
  std::string control_plane = "127.0.0.1:50051";
  std::string agent_id;
  std::string agent_token;
  v1::Selector selector;
  absl::Duration decision_interval = absl::Seconds(1);
  absl::Duration report_staleness = absl::Seconds(10);
  BackoffOptions reconnect;
  // Where peers and reporters reach this agent (sent to the control plane); empty: the
  // listen address with the bound port (the host name when listening on every address).
  std::string advertise_address;
  // How long the agent decides on without hearing from the control plane before it holds
  // every count (DESIGN §11); the control plane's --lease_ttl.
  absl::Duration lease_ttl = absl::Seconds(10);
  // Chainlets whose series /metrics shows (the first in key order); a gauge counts the
  // rest, so a scrape costs the same at 100 000 chainlets as at this many.
  size_t metrics_max_chainlets = 1000;
  WatchOptions watch;
  const Clock* clock = &RealClock::Get();  // tests drive time
  // When false, no ticker runs: the caller decides by calling Tick (tests).
  bool run_ticker = true;
  int http_max_connections = 512;
};

class AgentServer {
 public:
  // FAILED_PRECONDITION without keys unless insecure; INVALID_ARGUMENT for bad options;
  // UNAVAILABLE when a port cannot be bound.
  static absl::StatusOr<std::unique_ptr<AgentServer>> Start(AgentOptions options);
  ~AgentServer();

  int grpc_port() const { return grpc_port_; }
  int http_port() const { return http_port_; }
  DecisionLoop& loop() { return *loop_; }
  SyncClient& sync() { return *sync_; }
  // One decision round: decide every chainlet and send changes to the control plane.
  void Tick();
  // Ends streams with UNAVAILABLE, stops the ticker, the Sync stream and the servers.
  // Unary calls in flight get `grace` to finish; so do client connections to say goodbye
  // (an idle client may not answer gRPC's GOAWAY ping), after which they are closed. No
  // step waits on the control plane, so this returns within about `grace` plus one tick
  // whatever the control plane does.
  void Shutdown(absl::Duration grace = absl::Seconds(1));

 private:
  explicit AgentServer(AgentOptions options);
  absl::Status StartServing();
  void RunTicker();
  void SetServing(bool serving);
  void CollectMetrics(std::string* out) const;

  const AgentOptions options_;
  Metrics metrics_;
  SettingsCache cache_;
  std::unique_ptr<DecisionLoop> loop_;
  std::unique_ptr<SyncClient> sync_;
  std::unique_ptr<OwnerRoutes> routes_;
  std::unique_ptr<ReportForwarder> forwarder_;
  std::unique_ptr<AgentService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<HttpServer> http_;
  std::thread ticker_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> serving_{false};
  int grpc_port_ = 0;
  int http_port_ = 0;
  bool shut_down_ = false;
};

}  // namespace chainscale

#endif  // CHAINSCALE_AGENT_SERVER_H_
