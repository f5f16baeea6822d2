// ExternalScalerService: KEDA's external scaler protocol (externalscaler.ExternalScaler,
// DESIGN §12) on the control plane's gRPC port, a thin adapter over KedaScaler. Each call
// checks the key (in the trigger's metadata or the authorization header) and reads the
// chainlet the metadata names; reads run on a worker pool, off gRPC's threads.
// StreamIsActive runs on the callback API, fed by the DecisionFeed: it pushes as soon as
// the control plane stores a decision that moves the chainlet off zero or back to it.
#ifndef CHAINSCALE_CONTROL_PLANE_EXTERNAL_SCALER_SERVICE_H_
#define CHAINSCALE_CONTROL_PLANE_EXTERNAL_SCALER_SERVICE_H_

#include <atomic>

#include "common/auth.h"
#include "common/metrics.h"
#include "common/stream_set.h"
#include "common/worker_pool.h"
#include "control_plane/decision_feed.h"
#include "control_plane/keda_scaler.h"
#include "externalscaler/externalscaler.grpc.pb.h"

namespace chainscale {

// Callback API throughout, like ControlPlaneService: one server must not mix sync and
// callback handlers (see control_plane_service.h).
class ExternalScalerService final : public externalscaler::ExternalScaler::CallbackService {
 public:
  // `api_keys` empty: calls are open (the control plane runs --insecure). `metrics` must
  // outlive the service.
  ExternalScalerService(ApiKeys api_keys, Metrics* metrics);

  // Calls made before the backends are set (the store is still opening) answer
  // UNAVAILABLE. Set both, or both to null.
  void SetBackends(const KedaScaler* scaler, DecisionFeed* feed);
  // Ends every StreamIsActive stream with UNAVAILABLE, and any opened later.
  void FinishStreams() { streams_.EndAll(); }

  grpc::ServerUnaryReactor* IsActive(grpc::CallbackServerContext* context,
                                     const externalscaler::ScaledObjectRef* request,
                                     externalscaler::IsActiveResponse* response) override;
  grpc::ServerWriteReactor<externalscaler::IsActiveResponse>* StreamIsActive(
      grpc::CallbackServerContext* context,
      const externalscaler::ScaledObjectRef* request) override;
  grpc::ServerUnaryReactor* GetMetricSpec(grpc::CallbackServerContext* context,
                                          const externalscaler::ScaledObjectRef* request,
                                          externalscaler::GetMetricSpecResponse* response) override;
  grpc::ServerUnaryReactor* GetMetrics(grpc::CallbackServerContext* context,
                                       const externalscaler::GetMetricsRequest* request,
                                       externalscaler::GetMetricsResponse* response) override;

 private:
  // The key check and the chainlet `ref` names: the chainlet, or why the call is refused.
  absl::StatusOr<ScaledChainlet> Admit(const grpc::CallbackServerContext& context,
                                       const externalscaler::ScaledObjectRef& ref) const;
  // Admits the call, then runs `call(scaler, chainlet, desired replicas)` on the worker
  // pool, records the outcome and finishes the call.
  template <typename Call>
  grpc::ServerUnaryReactor* Serve(const char* method, grpc::CallbackServerContext* context,
                                  const externalscaler::ScaledObjectRef& ref, Call call);

  const ApiKeys api_keys_;
  Metrics* const metrics_;
  std::atomic<const KedaScaler*> scaler_{nullptr};
  std::atomic<DecisionFeed*> feed_{nullptr};
  StreamSet streams_;
  WorkerPool workers_{4};
};

}  // namespace chainscale

#endif  // CHAINSCALE_CONTROL_PLANE_EXTERNAL_SCALER_SERVICE_H_
