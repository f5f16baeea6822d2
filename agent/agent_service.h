// AgentService: the gRPC face of the agent. Thin: it checks the caller's key, hands
// reports and lookups to the DecisionLoop and turns answers into grpc::Status. StreamLoad
// and WatchScalingDecisions are long-lived callback-API streams; a watcher that falls
// further behind than its bound (see WatchOptions) is ended with RESOURCE_EXHAUSTED.
#ifndef CHAINSCALE_AGENT_AGENT_SERVICE_H_
#define CHAINSCALE_AGENT_AGENT_SERVICE_H_

#include "agent/decision_loop.h"
#include "agent/forwarder.h"
#include "chainscale/v1/agent.grpc.pb.h"
#include "common/auth.h"
#include "common/metrics.h"
#include "common/stream_set.h"

namespace chainscale {

using AgentServiceBase = v1::Agent::WithCallbackMethod_StreamLoad<
    v1::Agent::WithCallbackMethod_WatchScalingDecisions<v1::Agent::Service>>;

// How far a WatchScalingDecisions stream may fall behind: decisions waiting to be sent,
// at most twice the chainlets served (a listing and a whole tick of include_unchanged
// decisions), and never fewer than `min_backlog`.
struct WatchOptions {
  size_t min_backlog = 10'000;
};

// Where reports for another agent's chain environments go (DESIGN §11).
struct ReportRouting {
  // The owner's address; empty when unknown.
  std::function<std::string(const std::string& chain_id, const std::string& env_name)>
      owner_address;
  ReportForwarder* forwarder = nullptr;
};

class AgentService final : public AgentServiceBase {
 public:
  // `loop` and `metrics` must outlive the service.
  AgentService(ApiKeys api_keys, DecisionLoop* loop, Metrics* metrics,
               WatchOptions watch = {});

  // ReportLoad forwards reports for environments another agent owns. Set before serving.
  void SetRouting(ReportRouting routing) { routing_ = std::move(routing); }

  // Ends every stream with UNAVAILABLE, and any opened later.
  void EndStreams() { streams_.EndAll(); }

  grpc::Status ReportLoad(grpc::ServerContext* context, const v1::ReportLoadRequest* request,
                          v1::ReportLoadResponse* response) override;
  grpc::Status GetScalingDecision(grpc::ServerContext* context,
                                  const v1::GetScalingDecisionRequest* request,
                                  v1::ScalingDecision* response) override;
  grpc::Status ListScalingDecisions(grpc::ServerContext* context,
                                    const v1::ListScalingDecisionsRequest* request,
                                    v1::ListScalingDecisionsResponse* response) override;
  grpc::ServerBidiReactor<v1::StreamLoadRequest, v1::StreamLoadResponse>* StreamLoad(
      grpc::CallbackServerContext* context) override;
  grpc::ServerWriteReactor<v1::ScalingDecision>* WatchScalingDecisions(
      grpc::CallbackServerContext* context,
      const v1::WatchScalingDecisionsRequest* request) override;

 private:
  template <typename Call>
  grpc::Status Serve(const char* method, grpc::ServerContext* context, Call call);

  const ApiKeys api_keys_;
  DecisionLoop* const loop_;
  Metrics* const metrics_;
  const WatchOptions watch_;
  ReportRouting routing_;
  StreamSet streams_;
};

}  // namespace chainscale

#endif  // CHAINSCALE_AGENT_AGENT_SERVICE_H_
