// ControlPlaneServer: opens the store and serves the management API, the agents' Sync
// streams and KEDA's external scaler protocol over gRPC (with health and reflection) and
// /metrics over HTTP. main.cc turns flags into
// ControlPlaneOptions and calls Start.
#ifndef CHAINSCALE_CONTROL_PLANE_SERVER_H_
#define CHAINSCALE_CONTROL_PLANE_SERVER_H_

#include <grpcpp/server.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/auth.h"
#include "common/http_server.h"
#include "common/metrics.h"
#include "common/tls.h"
#include "console/console.h"
#include "control_plane/committer.h"
#include "console/decision_history.h"
#include "control_plane/control_plane_service.h"
#include "control_plane/decision_feed.h"
#include "control_plane/external_scaler_service.h"
#include "control_plane/keda_scaler.h"
#include "control_plane/management.h"
#include "control_plane/registry.h"
#include "control_plane/rest_gateway.h"
#include "control_plane/store.h"
#include "control_plane/sync_hub.h"

namespace chainscale {

struct ControlPlaneOptions {
  std::string listen = "127.0.0.1:50051";     // gRPC host:port; port 0 picks one
  std::string http_listen = "127.0.0.1:8080";  // REST, /metrics, /healthz; empty disables
  std::string data_dir = "./data/control-plane";
  ApiKeys api_keys;      // management callers
  ApiKeys agent_tokens;  // agents on the Sync stream
  bool insecure = false;  // allow starting without keys (local demos)
  TlsFiles tls;
  absl::Duration ack_timeout = absl::Seconds(2);
  int64_t log_retention = 100'000;
  // Writes are refused while the data disk has less free than this; 0: 10 % of the
  // filesystem, between 8 and 64 MiB.
  int64_t min_free_disk_bytes = 0;
  int max_message_bytes = 4 << 20;
  RegistryOptions registry;
  SyncHubOptions sync;
  OwnershipOptions ownership;
  double rest_rate_limit = 100;  // requests per second per key on the REST gateway
  int http_max_connections = 512;
  DecisionFeedOptions feed;
  DecisionHistoryOptions history;
  // Chainlets whose latest decision may wait for one WatchScalingDecisions stream.
  size_t max_feed_pending = 10'000;
};

class ControlPlaneServer {
 public:
  // Starts serving (health NOT_SERVING), opens the store, then reports SERVING.
  // FAILED_PRECONDITION without keys unless insecure; UNAVAILABLE when a port cannot be
  // bound; the store's error when it cannot be opened.
  static absl::StatusOr<std::unique_ptr<ControlPlaneServer>> Start(ControlPlaneOptions options);
  ~ControlPlaneServer();

  int grpc_port() const { return grpc_port_; }
  int http_port() const { return http_port_; }
  const Store& store() const { return *store_; }

  // Reports NOT_SERVING, stops taking calls, lets running ones finish (up to `grace`),
  // then closes the store. Idempotent.
  void Shutdown(absl::Duration grace = absl::Seconds(5));

 private:
  explicit ControlPlaneServer(ControlPlaneOptions options);
  absl::Status StartServing();
  absl::Status OpenStore();
  void SetServing(bool serving);

  const ControlPlaneOptions options_;
  Metrics metrics_;
  std::unique_ptr<ControlPlaneService> service_;
  std::unique_ptr<ExternalScalerService> scaler_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<RestGateway> rest_;
  std::unique_ptr<Console> console_;
  DecisionHistory history_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<DecisionFeed> feed_;
  std::unique_ptr<KedaScaler> keda_;
  std::unique_ptr<Committer> committer_;
  std::unique_ptr<SyncHub> hub_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<Management> management_;
  std::atomic<bool> serving_{false};
  int grpc_port_ = 0;
  int http_port_ = 0;
  bool shut_down_ = false;
};

}  // namespace chainscale

#endif  // CHAINSCALE_CONTROL_PLANE_SERVER_H_
