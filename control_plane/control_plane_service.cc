#include "control_plane/control_plane_service.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_auth.h"
#include "common/grpc_status.h"

namespace chainscale {

ControlPlaneService::ControlPlaneService(ControlPlaneServiceOptions options, Metrics* metrics)
    : options_(std::move(options)), metrics_(metrics) {}

void ControlPlaneService::SetBackends(Management* management, SyncHub* hub) {
  hub_.store(hub);
  management_.store(management);
}

grpc::ServerBidiReactor<v1::SyncRequest, v1::SyncResponse>* ControlPlaneService::Sync(
    grpc::CallbackServerContext* context) {
  metrics_->Add("chainscale_sync_streams_total", {});
  // Sync is open only when nothing at all is protected: --insecure with no
  // management keys and no agent tokens. Whenever keys are configured, agents
  // need a token too.
  SyncAccess access;
  access.agent_tokens = &options_.agent_tokens;
  access.open = options_.insecure && options_.api_keys.empty() && options_.agent_tokens.empty();
  return new SyncStream(context, access, hub_.load(), &streams_);
}

template <typename Call>
grpc::ServerUnaryReactor* ControlPlaneService::Serve(const char* method,
                                                     grpc::CallbackServerContext* context,
                                                     Call call) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Time start = absl::Now();
  absl::Status status = AuthorizeCall(options_.api_keys, *context);
  Management* management = management_.load();
  if (status.ok() && management == nullptr) {
    status = absl::UnavailableError("the control plane is still opening its store");
  }
  if (!status.ok()) {
    metrics_->RecordRpc(method, absl::StatusCodeToString(status.code()), absl::Now() - start);
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }
  workers_.Schedule([this, method, start, management, reactor, call = std::move(call)]() {
    const absl::Status result = call(*management);
    metrics_->RecordRpc(method, absl::StatusCodeToString(result.code()), absl::Now() - start);
    reactor->Finish(ToGrpcStatus(result));
  });
  return reactor;
}

// Copies a StatusOr's value into a response, passing its status on.
template <typename T>
absl::Status Into(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return result.status();
  *response = *std::move(result);
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* ControlPlaneService::CreateChain(grpc::CallbackServerContext* context,
                                                           const v1::CreateChainRequest* request,
                                                           v1::Chain* response) {
  return Serve("CreateChain", context, [request, response](Management& m) {
    return Into(m.registry().CreateChain(*request), response);
  });
}

grpc::ServerUnaryReactor* ControlPlaneService::GetChain(grpc::CallbackServerContext* context,
                                                        const v1::GetChainRequest* request,
                                                        v1::Chain* response) {
  return Serve("GetChain", context, [request, response](Management& m) {
    return Into(m.registry().GetChain(request->chain_id()), response);
  });
}

grpc::ServerUnaryReactor* ControlPlaneService::ListChains(grpc::CallbackServerContext* context,
                                                          const v1::ListChainsRequest* request,
                                                          v1::ListChainsResponse* response) {
  return Serve("ListChains", context, [request, response](Management& m) {
    return Into(m.registry().ListChains(*request), response);
  });
}

grpc::ServerUnaryReactor* ControlPlaneService::DeleteChain(grpc::CallbackServerContext* context,
                                                           const v1::DeleteChainRequest* request,
                                                           v1::DeleteChainResponse* response) {
  return Serve("DeleteChain", context, [request, response](Management& m) {
    absl::StatusOr<int64_t> revision = m.registry().DeleteChain(request->chain_id());
    if (revision.ok()) response->set_revision(*revision);
    return revision.status();
  });
}

grpc::ServerUnaryReactor* ControlPlaneService::CreateEnvironment(
    grpc::CallbackServerContext* context, const v1::CreateEnvironmentRequest* request,
    v1::ChainEnvironment* response) {
  return Serve("CreateEnvironment", context, [request, response](Management& m) {
    return Into(m.registry().CreateEnvironment(*request), response);
  });
}

grpc::ServerUnaryReactor* ControlPlaneService::DeleteEnvironment(
    grpc::CallbackServerContext* context, const v1::DeleteEnvironmentRequest* request,
    v1::DeleteEnvironmentResponse* response) {
  return Serve("DeleteEnvironment", context, [request, response](Management& m) {
    absl::StatusOr<int64_t> revision =
        m.registry().DeleteEnvironment(request->chain_id(), request->env_name());
    if (revision.ok()) response->set_revision(*revision);
    return revision.status();
  });
}

grpc::ServerUnaryReactor* ControlPlaneService::GetChainEnvironment(
    grpc::CallbackServerContext* context, const v1::GetChainEnvironmentRequest* request,
    v1::ChainEnvironment* response) {
  return Serve("GetChainEnvironment", context, [request, response](Management& m) {
    return Into(m.registry().GetChainEnvironment(request->chain_id(), request->env_name()),
                response);
  });
}

grpc::ServerUnaryReactor* ControlPlaneService::UpdateChainletEnvironmentAutoscalingSettings(
    grpc::CallbackServerContext* context,
    const v1::UpdateChainletEnvironmentAutoscalingSettingsRequest* request,
    v1::UpdateChainletEnvironmentAutoscalingSettingsResponse* response) {
  return Serve(
      "UpdateChainletEnvironmentAutoscalingSettings", context,
      [request, response](Management& m) { return Into(m.UpdateSettings(*request), response); });
}

}  // namespace chainscale
