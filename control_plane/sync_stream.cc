#include "control_plane/sync_stream.h"

#include "absl/strings/str_cat.h"
#include "common/grpc_auth.h"
#include "common/grpc_status.h"

namespace chainscale {

// The hub's handle on the stream, which may already be gone: OnDone detaches it first.
class SyncStream::Sink final : public SyncSink {
 public:
  explicit Sink(SyncStream* stream) : stream_(stream) {}
  void Send(v1::SyncResponse message) override {
    absl::MutexLock lock(&mu_);
    if (stream_ != nullptr) stream_->Write(std::move(message));
  }
  void End(const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    if (stream_ != nullptr) stream_->End(ToGrpcStatus(status));
  }
  void Resume() {
    absl::MutexLock lock(&mu_);
    if (stream_ != nullptr) stream_->ReadNext();
  }
  void Detach() {
    absl::MutexLock lock(&mu_);
    stream_ = nullptr;
  }

 private:
  absl::Mutex mu_;
  SyncStream* stream_ ABSL_GUARDED_BY(mu_);
};

SyncStream::SyncStream(grpc::CallbackServerContext* context, SyncAccess access, SyncHub* hub,
                       StreamSet* streams)
    : hub_(hub), streams_(streams), sink_(std::make_shared<Sink>(this)) {
  absl::Status status = absl::OkStatus();
  if (!streams_->Add(this)) {
    status = absl::UnavailableError("control plane shutting down");
  } else if (!access.open) {
    status = access.agent_tokens == nullptr || access.agent_tokens->empty()
                 ? absl::UnauthenticatedError(
                       "no agent tokens are configured on the control plane "
                       "(--agent_tokens_file or CHAINSCALE_AGENT_TOKEN)")
                 : AuthorizeCall(*access.agent_tokens, *context);
  }
  if (status.ok() && hub_ == nullptr) {
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
  if (in_.ByteSizeLong() > kSyncMaxMessageBytes) {
    End(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                     absl::StrCat("a Sync message of ", in_.ByteSizeLong(),
                                  " bytes; at most ", kSyncMaxMessageBytes)));
    return;
  }
  if (Handle(in_)) ReadNext();
}

void SyncStream::ReadNext() {
  absl::MutexLock lock(&mu_);
  if (!gate_.ending()) StartRead(&in_);
}

bool SyncStream::Handle(const v1::SyncRequest& request) {
  std::optional<SyncHub::SubscriptionId> subscription;
  {
    absl::MutexLock lock(&mu_);
    if (!subscription_.has_value()) {
      if (!request.has_hello()) {
        EndLocked(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                               "the first message on a Sync stream must be a hello"));
        return false;
      }
      // Under the stream's lock, so the hub's first write cannot complete before the
      // subscription is known here.
      absl::StatusOr<SyncHub::SubscriptionId> id = hub_->Subscribe(request.hello(), sink_);
      if (!id.ok()) {
        EndLocked(ToGrpcStatus(id.status()));
        return false;
      }
      subscription_ = *id;
      return true;
    }
    subscription = subscription_;
  }
  switch (request.kind_case()) {
    case v1::SyncRequest::kAck:
      if (absl::Status s = hub_->Ack(*subscription, request.ack().revision(),
                                       request.ack().snapshot_chunks()); !s.ok()) {
        End(ToGrpcStatus(s));
        return false;
      }
      return true;
    case v1::SyncRequest::kDecisions:
      // The next message is read once these are stored: one batch in flight per stream.
      hub_->TakeDecisions(*subscription, request.decisions(),
                          [sink = sink_] { sink->Resume(); });
      return false;
    case v1::SyncRequest::kHello:
      End(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "hello sent twice on one stream"));
      return false;
    case v1::SyncRequest::KIND_NOT_SET:
      End(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "empty Sync message"));
      return false;
  }
  return false;
}

void SyncStream::Write(v1::SyncResponse message) {
  absl::MutexLock lock(&mu_);
  if (!gate_.CanWrite()) return;  // ending: the hub hears of it when the stream is done
  out_ = std::move(message);
  gate_.Started();
  StartWrite(&out_);
}

void SyncStream::OnWriteDone(bool ok) {
  std::optional<SyncHub::SubscriptionId> subscription;
  {
    absl::MutexLock lock(&mu_);
    if (std::optional<grpc::Status> end = gate_.Completed()) {
      Finish(*end);
      return;
    }
    if (!ok) {
      EndLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write to agent failed"));
      return;
    }
    subscription = subscription_;
  }
  if (subscription.has_value()) hub_->WriteDone(*subscription);
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
  if (subscription.has_value()) hub_->Unsubscribe(*subscription);
  sink_->Detach();
  streams_->Remove(this);
  delete this;
}

}  // namespace chainscale
