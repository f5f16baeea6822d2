// ControlPlaneService: the gRPC face of the control plane. A thin adapter:
// management calls check the caller's key, go to the Management core and come
// back as a grpc::Status, counted in the metrics. Sync streams run on the
// callback API as SyncStream reactors.
#ifndef CHAINSCALE_CONTROL_PLANE_CONTROL_PLANE_SERVICE_H_
#define CHAINSCALE_CONTROL_PLANE_CONTROL_PLANE_SERVICE_H_

#include <atomic>

#include "absl/time/time.h"
#include "chainscale/v1/control_plane.grpc.pb.h"
#include "common/auth.h"
#include "common/metrics.h"
#include "common/worker_pool.h"
#include "control_plane/decision_feed.h"
#include "control_plane/management.h"
#include "control_plane/sync_hub.h"
#include "control_plane/sync_stream.h"

namespace chainscale {

struct ControlPlaneServiceOptions {
  ApiKeys api_keys;       // management callers
  ApiKeys agent_tokens;   // agents on Sync
  bool insecure = false;  // no keys configured is allowed: calls are open
  // Chainlets whose latest decision may wait for one WatchScalingDecisions stream; a
  // watcher with more waiting is ended with RESOURCE_EXHAUSTED.
  size_t max_feed_pending = 10'000;
};

// Every method uses gRPC's callback API: a server that mixes sync and callback
// handlers leaves calls waiting on gRPC 1.51's idle callback pollers (stalls of
// ~100 ms about once a second while no stream is busy). Management calls run on
// a worker pool, since they may wait for a commit and for agents' acks.
class ControlPlaneService final : public v1::ControlPlane::CallbackService {
 public:
  // `metrics` must outlive the service.
  ControlPlaneService(ControlPlaneServiceOptions options, Metrics* metrics);

  // Calls made before the backends are set (the store is still opening) answer
  // UNAVAILABLE. Set them all, or all to null.
  void SetBackends(Management* management, SyncHub* hub, DecisionFeed* feed);
  // Ends every Sync and WatchScalingDecisions stream with UNAVAILABLE, and any opened
  // later.
  void FinishStreams() { streams_.EndAll(); }

  grpc::ServerBidiReactor<v1::SyncRequest, v1::SyncResponse>* Sync(
      grpc::CallbackServerContext* context) override;

  grpc::ServerWriteReactor<v1::WatchDecisionFeedResponse>* WatchScalingDecisions(
      grpc::CallbackServerContext* context, const v1::WatchDecisionFeedRequest* request) override;

  grpc::ServerUnaryReactor* CreateChain(grpc::CallbackServerContext* context,
                                        const v1::CreateChainRequest* request,
                                        v1::Chain* response) override;
  grpc::ServerUnaryReactor* GetChain(grpc::CallbackServerContext* context,
                                     const v1::GetChainRequest* request,
                                     v1::Chain* response) override;
  grpc::ServerUnaryReactor* ListChains(grpc::CallbackServerContext* context,
                                       const v1::ListChainsRequest* request,
                                       v1::ListChainsResponse* response) override;
  grpc::ServerUnaryReactor* DeleteChain(grpc::CallbackServerContext* context,
                                        const v1::DeleteChainRequest* request,
                                        v1::DeleteChainResponse* response) override;
  grpc::ServerUnaryReactor* CreateEnvironment(grpc::CallbackServerContext* context,
                                              const v1::CreateEnvironmentRequest* request,
                                              v1::ChainEnvironment* response) override;
  grpc::ServerUnaryReactor* DeleteEnvironment(grpc::CallbackServerContext* context,
                                              const v1::DeleteEnvironmentRequest* request,
                                              v1::DeleteEnvironmentResponse* response) override;
  grpc::ServerUnaryReactor* GetChainEnvironment(grpc::CallbackServerContext* context,
                                                const v1::GetChainEnvironmentRequest* request,
                                                v1::ChainEnvironment* response) override;
  grpc::ServerUnaryReactor* UpdateChainletEnvironmentAutoscalingSettings(
      grpc::CallbackServerContext* context,
      const v1::UpdateChainletEnvironmentAutoscalingSettingsRequest* request,
      v1::UpdateChainletEnvironmentAutoscalingSettingsResponse* response) override;

 private:
  // Authorizes, runs `call` against the management core on the worker pool,
  // records the outcome and finishes the call.
  template <typename Call>
  grpc::ServerUnaryReactor* Serve(const char* method, grpc::CallbackServerContext* context,
                                  Call call);

  const ControlPlaneServiceOptions options_;
  Metrics* const metrics_;
  std::atomic<Management*> management_{nullptr};
  std::atomic<SyncHub*> hub_{nullptr};
  std::atomic<DecisionFeed*> feed_{nullptr};
  StreamSet streams_;
  WorkerPool workers_{16};
};

}  // namespace chainscale

#endif  // CHAINSCALE_CONTROL_PLANE_CONTROL_PLANE_SERVICE_H_
