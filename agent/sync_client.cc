#include "agent/sync_client.h"

#include "absl/strings/str_cat.h"
#include "common/chainlet_key.h"
#include "common/log.h"

namespace chainscale {

SyncClient::SyncClient(SyncClientOptions options, SettingsCache* cache)
    : options_(std::move(options)),
      cache_(cache),
      stub_(v1::ControlPlane::NewStub(
          grpc::CreateChannel(options_.control_plane, options_.credentials))) {}

SyncClient::~SyncClient() { Stop(); }

void SyncClient::Start() { thread_ = std::thread([this] { Run(); }); }

void SyncClient::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (context_ != nullptr) context_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

void SyncClient::DropStream() {
  absl::MutexLock lock(&mu_);
  if (context_ != nullptr) context_->TryCancel();
}

bool SyncClient::connected() const {
  absl::MutexLock lock(&mu_);
  return stream_ != nullptr;
}

SyncClient::Stats SyncClient::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void SyncClient::Run() {
  Backoff backoff(options_.backoff);
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    grpc::Status status = RunStream(backoff);
    {
      absl::MutexLock lock(&mu_);
      stats_.last_end_code = status.error_code();
    }
    const absl::Duration delay = backoff.Next();
    LogWarning("sync stream ended",
               {{"agent_id", options_.agent_id},
                {"code", std::to_string(status.error_code())},
                {"error", status.error_message()},
                {"retry_in", absl::FormatDuration(delay)}});
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), delay);
  }
}

grpc::Status SyncClient::RunStream(Backoff& backoff) {
  grpc::ClientContext context;
  if (!options_.token.empty()) {
    context.AddMetadata("authorization", absl::StrCat("Bearer ", options_.token));
  }
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return grpc::Status::CANCELLED;
    context_ = &context;
    ++stats_.streams;
  }
  std::unique_ptr<Stream> stream = stub_->Sync(&context);

  v1::SyncRequest hello;
  hello.mutable_hello()->set_agent_id(options_.agent_id);
  *hello.mutable_hello()->mutable_selector() = options_.selector;
  hello.mutable_hello()->set_last_applied_revision(cache_->applied_revision());
  hello.mutable_hello()->set_cluster_id(cache_->cluster_id());
  if (stream->Write(hello)) {
    {
      absl::MutexLock lock(&mu_);
      stream_ = stream.get();
    }
    FlushDecisions();
  }

  std::vector<v1::ChainletState> snapshot;  // chunks gathered so far
  v1::SyncResponse response;
  while (stream->Read(&response)) {
    backoff.Reset();
    Handle(response, &snapshot);
  }
  {
    absl::MutexLock write_lock(&write_mu_);  // no writer is left on the stream
    absl::MutexLock lock(&mu_);
    stream_ = nullptr;
    context_ = nullptr;
  }
  return stream->Finish();
}

void SyncClient::Handle(const v1::SyncResponse& response,
                        std::vector<v1::ChainletState>* snapshot) {
  switch (response.kind_case()) {
    case v1::SyncResponse::kSnapshot: {
      const v1::SyncSnapshot& chunk = response.snapshot();
      snapshot->insert(snapshot->end(), chunk.chainlets().begin(), chunk.chainlets().end());
      if (!chunk.last_chunk()) return;
      if (!cache_->cluster_id().empty() && cache_->cluster_id() != chunk.cluster_id()) {
        LogWarning("control plane has a new cluster id; state replaced",
                   {{"old", cache_->cluster_id()}, {"new", chunk.cluster_id()}});
      }
      {
        // Counted before it is applied, so whoever sees the applied revision sees the count.
        absl::MutexLock lock(&mu_);
        ++stats_.snapshots;
      }
      cache_->ApplySnapshot(chunk.cluster_id(), chunk.revision(), *snapshot);
      snapshot->clear();
      Ack(chunk.revision());
      return;
    }
    case v1::SyncResponse::kChange: {
      absl::Status applied = cache_->ApplyChange(response.change());
      absl::MutexLock lock(&mu_);
      if (!applied.ok()) {
        ++stats_.rejected;
        LogWarning("change rejected", {{"agent_id", options_.agent_id},
                                       {"error", std::string(applied.message())}});
        return;
      }
      ++stats_.changes;
      break;
    }
    case v1::SyncResponse::kProgress:
      cache_->AdvanceTo(response.progress().revision());
      break;
    case v1::SyncResponse::KIND_NOT_SET:
      return;
  }
  Ack(cache_->applied_revision());
}

void SyncClient::Ack(int64_t revision) {
  v1::SyncRequest ack;
  ack.mutable_ack()->set_revision(revision);
  Write(ack);
}

bool SyncClient::Write(const v1::SyncRequest& request) {
  absl::MutexLock write_lock(&write_mu_);
  Stream* stream;
  {
    absl::MutexLock lock(&mu_);
    stream = stream_;
  }
  return stream != nullptr && stream->Write(request);
}

void SyncClient::SendDecisions(const std::vector<v1::ScalingDecision>& decisions) {
  {
    absl::MutexLock lock(&mu_);
    for (const v1::ScalingDecision& d : decisions) {
      unsent_[EncodeChainletKey(d.chain_id(), d.env_name(), d.chainlet_name())] = d;
    }
  }
  FlushDecisions();
}

void SyncClient::FlushDecisions() {
  absl::MutexLock write_lock(&write_mu_);
  Stream* stream;
  absl::flat_hash_map<std::string, v1::ScalingDecision> sending;
  {
    absl::MutexLock lock(&mu_);
    if (stream_ == nullptr || unsent_.empty()) return;
    stream = stream_;
    sending.swap(unsent_);
  }
  v1::SyncRequest request;
  for (auto& [key, decision] : sending) *request.mutable_decisions()->add_decisions() = decision;
  if (stream->Write(request)) return;
  // Not sent: keep them for the next stream, unless a newer decision arrived meanwhile.
  absl::MutexLock lock(&mu_);
  for (auto& [key, decision] : sending) unsent_.try_emplace(key, std::move(decision));
}

}  // namespace chainscale
