#include "agent/agent_service.h"

#include <deque>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/chainlet_key.h"
#include "common/grpc_auth.h"
#include "common/grpc_status.h"
#include "common/write_gate.h"

namespace chainscale {
namespace {

// A StreamLoad client that does not read its responses stops being read from after this
// many are waiting.
constexpr size_t kMaxQueuedResponses = 1024;

// StreamLoad: reads batches, records each report on its own, answers each batch in order.
class LoadStream final
    : public grpc::ServerBidiReactor<v1::StreamLoadRequest, v1::StreamLoadResponse>,
      public EndableStream {
 public:
  LoadStream(const absl::Status& auth, DecisionLoop* loop, StreamSet* streams)
      : loop_(loop), streams_(streams) {
    if (!streams_->Add(this)) {
      End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "agent shutting down"));
    } else if (!auth.ok()) {
      End(ToGrpcStatus(auth));
    } else {
      reading_ = true;
      StartRead(&in_);
    }
  }

  void OnReadDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    reading_ = false;
    if (!ok) {  // the client is done sending
      read_side_done_ = true;
      if (queue_.empty() && !gate_.writing()) EndLocked(grpc::Status::OK);
      return;
    }
    const std::vector<absl::Status> statuses = loop_->ReportEach(in_.reports());
    v1::StreamLoadResponse response;
    response.set_sequence(in_.sequence());
    for (size_t i = 0; i < statuses.size(); ++i) {
      if (statuses[i].ok()) {
        response.set_accepted(response.accepted() + 1);
        continue;
      }
      v1::ReportRejection* rejection = response.add_rejections();
      rejection->set_index(static_cast<int32_t>(i));
      rejection->set_code(static_cast<int32_t>(statuses[i].code()));
      rejection->set_message(std::string(statuses[i].message()));
    }
    queue_.push_back(std::move(response));
    WriteNextLocked();
    ReadNextLocked();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    if (std::optional<grpc::Status> end = gate_.Completed()) {
      Finish(*end);
      return;
    }
    if (!ok) {
      EndLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write to client failed"));
      return;
    }
    WriteNextLocked();
    ReadNextLocked();
    if (read_side_done_ && queue_.empty() && !gate_.writing()) EndLocked(grpc::Status::OK);
  }

  void OnCancel() override { End(grpc::Status::CANCELLED); }

  void OnDone() override {
    streams_->Remove(this);
    delete this;
  }

  void End(const grpc::Status& status) override {
    absl::MutexLock lock(&mu_);
    EndLocked(status);
  }

 private:
  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!gate_.CanWrite() || queue_.empty()) return;
    out_ = std::move(queue_.front());
    queue_.pop_front();
    gate_.Started();
    StartWrite(&out_);
  }
  // Backpressure: stop reading while too many answers wait for the client.
  void ReadNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (reading_ || gate_.ending() || read_side_done_ || queue_.size() >= kMaxQueuedResponses) {
      return;
    }
    reading_ = true;
    StartRead(&in_);
  }
  void EndLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (std::optional<grpc::Status> end = gate_.End(status)) Finish(*end);
  }

  DecisionLoop* const loop_;
  StreamSet* const streams_;
  v1::StreamLoadRequest in_;
  absl::Mutex mu_;
  v1::StreamLoadResponse out_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::StreamLoadResponse> queue_ ABSL_GUARDED_BY(mu_);
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool read_side_done_ ABSL_GUARDED_BY(mu_) = false;
  WriteGate gate_ ABSL_GUARDED_BY(mu_);
};

// WatchScalingDecisions: the current decisions, then each change. Pending decisions are
// kept latest-per-chainlet, so a slow watcher costs at most one decision per chainlet.
class DecisionWatch final : public grpc::ServerWriteReactor<v1::ScalingDecision>,
                            public EndableStream {
 public:
  DecisionWatch(const absl::Status& auth, const v1::WatchScalingDecisionsRequest& request,
                DecisionLoop* loop, StreamSet* streams)
      : loop_(loop), streams_(streams), chain_id_(request.chain_id()),
        env_name_(request.env_name()) {
    if (!streams_->Add(this)) {
      End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "agent shutting down"));
      return;
    }
    if (!auth.ok()) {
      End(ToGrpcStatus(auth));
      return;
    }
    if (absl::Status s = ValidateDecisionFilter(chain_id_, env_name_); !s.ok()) {
      End(ToGrpcStatus(s));
      return;
    }
    watcher_ = loop_->AddWatcher(
        [this](const v1::ScalingDecision& d, bool) { Enqueue(d); },
        request.include_unchanged());
    for (const v1::ScalingDecision& d : loop_->List(chain_id_, env_name_)) Enqueue(d);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    if (std::optional<grpc::Status> end = gate_.Completed()) {
      Finish(*end);
      return;
    }
    if (!ok) {
      EndLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write to client failed"));
      return;
    }
    WriteNextLocked();
  }

  void OnCancel() override { End(grpc::Status::CANCELLED); }

  void OnDone() override {
    if (watcher_.has_value()) loop_->RemoveWatcher(*watcher_);
    streams_->Remove(this);
    delete this;
  }

  void End(const grpc::Status& status) override {
    absl::MutexLock lock(&mu_);
    EndLocked(status);
  }

 private:
  void Enqueue(const v1::ScalingDecision& d) {
    if (!chain_id_.empty() && d.chain_id() != chain_id_) return;
    if (!env_name_.empty() && d.env_name() != env_name_) return;
    absl::MutexLock lock(&mu_);
    const std::string key = EncodeChainletKey(d.chain_id(), d.env_name(), d.chainlet_name());
    auto [it, inserted] = pending_.insert_or_assign(key, d);
    if (inserted) order_.push_back(key);
    WriteNextLocked();
  }

  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!gate_.CanWrite() || order_.empty()) return;
    auto it = pending_.find(order_.front());
    out_ = std::move(it->second);
    pending_.erase(it);
    order_.pop_front();
    gate_.Started();
    StartWrite(&out_);
  }

  void EndLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (std::optional<grpc::Status> end = gate_.End(status)) Finish(*end);
  }

  DecisionLoop* const loop_;
  StreamSet* const streams_;
  const std::string chain_id_;
  const std::string env_name_;
  std::optional<int> watcher_;
  absl::Mutex mu_;
  v1::ScalingDecision out_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, v1::ScalingDecision> pending_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> order_ ABSL_GUARDED_BY(mu_);
  WriteGate gate_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

AgentService::AgentService(ApiKeys api_keys, DecisionLoop* loop, Metrics* metrics)
    : api_keys_(std::move(api_keys)), loop_(loop), metrics_(metrics) {}

template <typename Call>
grpc::Status AgentService::Serve(const char* method, grpc::ServerContext* context, Call call) {
  const absl::Time start = absl::Now();
  absl::Status status = AuthorizeCall(api_keys_, *context);
  if (status.ok()) status = call();
  metrics_->RecordRpc(method, absl::StatusCodeToString(status.code()), absl::Now() - start);
  return ToGrpcStatus(status);
}

grpc::Status AgentService::ReportLoad(grpc::ServerContext* context,
                                      const v1::ReportLoadRequest* request,
                                      v1::ReportLoadResponse* response) {
  return Serve("ReportLoad", context, [&] {
    absl::StatusOr<std::vector<v1::ScalingDecision>> decisions = loop_->Report(request->reports());
    if (!decisions.ok()) return decisions.status();
    for (v1::ScalingDecision& d : *decisions) *response->add_decisions() = std::move(d);
    return absl::OkStatus();
  });
}

grpc::Status AgentService::GetScalingDecision(grpc::ServerContext* context,
                                              const v1::GetScalingDecisionRequest* request,
                                              v1::ScalingDecision* response) {
  return Serve("GetScalingDecision", context, [&] {
    v1::ChainletKey key;
    key.set_chain_id(request->chain_id());
    key.set_env_name(request->env_name());
    key.set_chainlet_name(request->chainlet_name());
    absl::StatusOr<v1::ScalingDecision> decision = loop_->Get(key);
    if (!decision.ok()) return decision.status();
    *response = *std::move(decision);
    return absl::OkStatus();
  });
}

grpc::Status AgentService::ListScalingDecisions(grpc::ServerContext* context,
                                                const v1::ListScalingDecisionsRequest* request,
                                                v1::ListScalingDecisionsResponse* response) {
  return Serve("ListScalingDecisions", context, [&]() -> absl::Status {
    absl::StatusOr<v1::ListScalingDecisionsResponse> page = loop_->ListPage(*request);
    if (!page.ok()) return page.status();
    *response = *std::move(page);
    return absl::OkStatus();
  });
}

grpc::ServerBidiReactor<v1::StreamLoadRequest, v1::StreamLoadResponse>* AgentService::StreamLoad(
    grpc::CallbackServerContext* context) {
  metrics_->Add("chainscale_load_streams_total", {});
  return new LoadStream(AuthorizeCall(api_keys_, *context), loop_, &streams_);
}

grpc::ServerWriteReactor<v1::ScalingDecision>* AgentService::WatchScalingDecisions(
    grpc::CallbackServerContext* context, const v1::WatchScalingDecisionsRequest* request) {
  metrics_->Add("chainscale_watch_streams_total", {});
  return new DecisionWatch(AuthorizeCall(api_keys_, *context), *request, loop_, &streams_);
}

}  // namespace chainscale
