#include "control_plane/sync_stream.h"

#include "common/grpc_auth.h"
#include "common/grpc_status.h"
#include "common/log.h"

namespace chainscale {

// Lets the hub wake a stream that may already be gone: OnDone detaches it first.
class SyncStream::Waker final : public SyncSubscriber {
 public:
  explicit Waker(SyncStream* stream) : stream_(stream) {}
  void Wake() override {
    absl::MutexLock lock(&mu_);
    if (stream_ != nullptr) stream_->MaybeWrite();
  }
  void Detach() {
    absl::MutexLock lock(&mu_);
    stream_ = nullptr;
  }

 private:
  absl::Mutex mu_;
  SyncStream* stream_ ABSL_GUARDED_BY(mu_);
};

SyncStream::SyncStream(grpc::CallbackServerContext* context, const ApiKeys& agent_tokens,
                       bool open_access, SyncBackends backends, StreamSet* streams)
    : backends_(backends), streams_(streams), waker_(std::make_shared<Waker>(this)) {
  absl::Status status = absl::OkStatus();
  if (!streams_->Add(this)) {
    status = absl::UnavailableError("control plane shutting down");
  } else if (agent_tokens.empty() && !open_access) {
    status = absl::UnauthenticatedError(
        "no agent tokens are configured on the control plane (--agent_tokens_file)");
  } else {
    status = AuthorizeCall(agent_tokens, *context);
  }
  if (status.ok() && (backends_.hub == nullptr || backends_.store == nullptr)) {
    status = absl::UnavailableError("the control plane is still opening its store");
  }
  if (!status.ok()) {
    End(ToGrpcStatus(status));
    return;
  }
  StartRead(&in_);
}

void SyncStream::OnReadDone(bool ok) {
  if (!ok) {
    // The agent half-closed or went away.
    End(grpc::Status::OK);
    return;
  }
  Handle(in_);
  {
    absl::MutexLock lock(&mu_);
    if (gate_.ending()) return;
  }
  StartRead(&in_);
}

void SyncStream::Handle(const v1::SyncRequest& request) {
  std::optional<SyncHub::SubscriptionId> subscription;
  {
    absl::MutexLock lock(&mu_);
    subscription = subscription_;
  }
  if (!subscription.has_value()) {
    if (!request.has_hello()) {
      End(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                       "the first message on a Sync stream must be a hello"));
      return;
    }
    // Subscribe without the stream's lock: the hub wakes the stream from inside.
    const SyncHub::SubscriptionId id = backends_.hub->Subscribe(request.hello(), waker_);
    {
      absl::MutexLock lock(&mu_);
      subscription_ = id;
      agent_id_ = request.hello().agent_id();
    }
    MaybeWrite();
    return;
  }
  switch (request.kind_case()) {
    case v1::SyncRequest::kAck:
      backends_.hub->Ack(*subscription, request.ack().revision());
      break;
    case v1::SyncRequest::kDecisions:
      for (const v1::ScalingDecision& decision : request.decisions().decisions()) {
        absl::Status s = backends_.store->PutDecision(decision);
        // A decision for a chainlet deleted meanwhile has nowhere to go.
        if (!s.ok() && !absl::IsNotFound(s)) {
          LogError("cannot store decision", {{"error", std::string(s.message())}});
        }
      }
      break;
    case v1::SyncRequest::kHello:
      End(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "hello sent twice on one stream"));
      break;
    case v1::SyncRequest::KIND_NOT_SET:
      End(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "empty Sync message"));
      break;
  }
}

void SyncStream::MaybeWrite() {
  absl::MutexLock lock(&mu_);
  MaybeWriteLocked();
}

void SyncStream::MaybeWriteLocked() {
  if (!gate_.CanWrite() || !subscription_.has_value()) return;
  absl::StatusOr<std::optional<v1::SyncResponse>> next = backends_.hub->Next(*subscription_);
  if (!next.ok()) {
    LogError("sync stream cannot read the store",
             {{"agent_id", agent_id_}, {"error", std::string(next.status().message())}});
    EndLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "control plane cannot read its store"));
    return;
  }
  if (!next->has_value()) return;
  out_ = **std::move(next);
  gate_.Started();
  StartWrite(&out_);
}

void SyncStream::OnWriteDone(bool ok) {
  absl::MutexLock lock(&mu_);
  if (std::optional<grpc::Status> end = gate_.Completed()) {
    Finish(*end);
    return;
  }
  if (!ok) {
    EndLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write to agent failed"));
    return;
  }
  MaybeWriteLocked();
}

void SyncStream::OnCancel() { End(grpc::Status::CANCELLED); }

void SyncStream::End(const grpc::Status& status) {
  absl::MutexLock lock(&mu_);
  EndLocked(status);
}

void SyncStream::EndLocked(const grpc::Status& status) {
  if (std::optional<grpc::Status> end = gate_.End(status)) Finish(*end);
}

void SyncStream::OnDone() {
  std::optional<SyncHub::SubscriptionId> subscription;
  {
    absl::MutexLock lock(&mu_);
    subscription = subscription_;
  }
  if (subscription.has_value()) backends_.hub->Unsubscribe(*subscription);
  waker_->Detach();
  streams_->Remove(this);
  delete this;
}

}  // namespace chainscale
