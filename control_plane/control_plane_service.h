// ControlPlaneService: the gRPC face of the management API. A thin adapter: it checks the
// caller's key, hands the request to the Registry and turns the answer into a
// grpc::Status, counting every call in the metrics.
#ifndef CHAINSCALE_CONTROL_PLANE_CONTROL_PLANE_SERVICE_H_
#define CHAINSCALE_CONTROL_PLANE_CONTROL_PLANE_SERVICE_H_

#include <atomic>

#include "chainscale/v1/control_plane.grpc.pb.h"
#include "common/auth.h"
#include "common/metrics.h"
#include "control_plane/registry.h"

namespace chainscale {

class ControlPlaneService final : public v1::ControlPlane::Service {
 public:
  // `metrics` must outlive the service.
  ControlPlaneService(ApiKeys api_keys, Metrics* metrics);

  // Calls made before the registry is set (the store is still opening) answer UNAVAILABLE.
  void SetRegistry(Registry* registry) { registry_.store(registry); }

  grpc::Status CreateChain(grpc::ServerContext* context, const v1::CreateChainRequest* request,
                           v1::Chain* response) override;
  grpc::Status GetChain(grpc::ServerContext* context, const v1::GetChainRequest* request,
                        v1::Chain* response) override;
  grpc::Status ListChains(grpc::ServerContext* context, const v1::ListChainsRequest* request,
                          v1::ListChainsResponse* response) override;
  grpc::Status DeleteChain(grpc::ServerContext* context, const v1::DeleteChainRequest* request,
                           v1::DeleteChainResponse* response) override;
  grpc::Status CreateEnvironment(grpc::ServerContext* context,
                                 const v1::CreateEnvironmentRequest* request,
                                 v1::ChainEnvironment* response) override;
  grpc::Status DeleteEnvironment(grpc::ServerContext* context,
                                 const v1::DeleteEnvironmentRequest* request,
                                 v1::DeleteEnvironmentResponse* response) override;
  grpc::Status GetChainEnvironment(grpc::ServerContext* context,
                                   const v1::GetChainEnvironmentRequest* request,
                                   v1::ChainEnvironment* response) override;
  grpc::Status UpdateChainletEnvironmentAutoscalingSettings(
      grpc::ServerContext* context,
      const v1::UpdateChainletEnvironmentAutoscalingSettingsRequest* request,
      v1::UpdateChainletEnvironmentAutoscalingSettingsResponse* response) override;

 private:
  // Authorizes, runs `call` against the registry, records the outcome.
  template <typename Call>
  grpc::Status Serve(const char* method, grpc::ServerContext* context, Call call);

  const ApiKeys api_keys_;
  Metrics* const metrics_;
  std::atomic<Registry*> registry_{nullptr};
};

}  // namespace chainscale

#endif  // CHAINSCALE_CONTROL_PLANE_CONTROL_PLANE_SERVICE_H_
