#include "agent/sync_client.h"

#include "absl/strings/str_cat.h"
#include "common/chainlet_key.h"
#include "common/keepalive.h"
#include "common/log.h"

namespace chainscale {
namespace {

// Room left in a decisions message for its envelope.
constexpr size_t kEnvelopeBytes = 4096;

std::shared_ptr<grpc::Channel> MakeChannel(const SyncClientOptions& options) {
  grpc::ChannelArguments args;
  ApplyChannelKeepalive(args);
  args.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
  args.SetMaxSendMessageSize(static_cast<int>(options.max_message_bytes));
  return grpc::CreateCustomChannel(options.control_plane, options.credentials, args);
}

}  // namespace

SyncClient::SyncClient(SyncClientOptions options, SettingsCache* cache)
    : options_(std::move(options)),
      cache_(cache),
      stub_(v1::ControlPlane::NewStub(MakeChannel(options_))) {}

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

absl::Time SyncClient::last_heard() const {
  absl::MutexLock lock(&mu_);
  return last_heard_;
}

bool SyncClient::connected() const {
  absl::MutexLock lock(&mu_);
  return stream_up_;
}

size_t SyncClient::unacknowledged_decisions() const {
  absl::MutexLock lock(&mu_);
  size_t n = outbox_.size();
  for (const auto& [key, d] : in_flight_) n += outbox_.contains(key) ? 0 : 1;
  return n;
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
      if (stopping_) return;
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
  int64_t generation;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return grpc::Status::CANCELLED;
    context_ = &context;
    generation = ++generation_;
    ++stats_.streams;
    stream_over_ = false;
    ack_.reset();
    chunk_ack_.reset();
    RequeueInFlightLocked();  // whatever the last stream did not get acknowledged
  }
  std::unique_ptr<Stream> stream = stub_->Sync(&context);

  v1::SyncRequest hello;
  hello.mutable_hello()->set_agent_id(options_.agent_id);
  *hello.mutable_hello()->mutable_selector() = options_.selector;
  hello.mutable_hello()->set_last_applied_revision(cache_->applied_revision());
  hello.mutable_hello()->set_cluster_id(cache_->cluster_id());
  hello.mutable_hello()->set_advertise_address(options_.advertise_address);
  std::thread writer;
  if (stream->Write(hello)) {
    {
      absl::MutexLock lock(&mu_);
      stream_up_ = true;
    }
    writer = std::thread([this, s = stream.get(), generation] { WriteLoop(s, generation); });
  }

  parts_.clear();
  snapshot_.clear();
  snapshot_chunks_ = 0;
  v1::SyncResponse response;
  while (stream->Read(&response)) {
    backoff.Reset();
    Handle(response);
  }
  {
    absl::MutexLock lock(&mu_);
    stream_up_ = false;
    stream_over_ = true;  // the writer stops; a write in flight fails with the call
  }
  if (writer.joinable()) writer.join();
  {
    absl::MutexLock lock(&mu_);
    context_ = nullptr;
    RequeueInFlightLocked();
  }
  return stream->Finish();
}

void SyncClient::Handle(const v1::SyncResponse& response) {
  {
    absl::MutexLock lock(&mu_);
    last_heard_ = absl::Now();
  }
  switch (response.kind_case()) {
    case v1::SyncResponse::kOwners:
      if (options_.on_owners) options_.on_owners(response.owners());
      return;
    case v1::SyncResponse::kSnapshot: {
      const v1::SyncSnapshot& chunk = response.snapshot();
      snapshot_.insert(snapshot_.end(), chunk.chainlets().begin(), chunk.chainlets().end());
      if (!chunk.last_chunk()) {
        ++snapshot_chunks_;
        absl::MutexLock lock(&mu_);
        chunk_ack_ = snapshot_chunks_;
        return;
      }
      snapshot_chunks_ = 0;
      if (!cache_->cluster_id().empty() && cache_->cluster_id() != chunk.cluster_id()) {
        LogWarning("control plane has a new cluster id; state replaced",
                   {{"old", cache_->cluster_id()}, {"new", chunk.cluster_id()}});
      }
      {
        // Counted before it is applied, so whoever sees the applied revision sees the count.
        absl::MutexLock lock(&mu_);
        ++stats_.snapshots;
      }
      cache_->ApplySnapshot(chunk.cluster_id(), chunk.revision(), snapshot_);
      snapshot_.clear();
      break;
    }
    case v1::SyncResponse::kChange: {
      if (response.change().continued()) {
        parts_.push_back(response.change());
        return;
      }
      absl::Status applied;
      if (parts_.empty()) {
        applied = cache_->ApplyChange(response.change());
      } else {
        // The last part of a change too big for one message: applied whole, now.
        v1::SyncChange whole = response.change();
        for (const v1::SyncChange& part : parts_) {
          for (const v1::ChainletState& s : part.upserts()) *whole.add_upserts() = s;
          for (const v1::ChainletKey& k : part.removals()) *whole.add_removals() = k;
        }
        parts_.clear();
        applied = cache_->ApplyChange(whole);
      }
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
    case v1::SyncResponse::kDecisionsAck: {
      absl::MutexLock lock(&mu_);
      const v1::SyncDecisionsAck& ack = response.decisions_ack();
      if (in_flight_sequence_ == ack.sequence()) {
        stats_.decisions_stored += ack.stored();
        stats_.decisions_refused += ack.refused();
        in_flight_.clear();
        in_flight_sequence_.reset();
      }
      if (ack.refused() > 0) {
        LogWarning("the control plane refused decisions",
                   {{"refused", std::to_string(ack.refused())}, {"first", ack.refusal()}});
      }
      return;
    }
    case v1::SyncResponse::KIND_NOT_SET:
      return;
  }
  const int64_t applied = cache_->applied_revision();
  absl::MutexLock lock(&mu_);
  if (!ack_.has_value() || *ack_ < applied) ack_ = applied;
}

void SyncClient::SendDecisions(const std::vector<v1::ScalingDecision>& decisions) {
  absl::MutexLock lock(&mu_);
  for (const v1::ScalingDecision& d : decisions) {
    outbox_[EncodeChainletKey(d.chain_id(), d.env_name(), d.chainlet_name())] = d;
  }
}

void SyncClient::RequeueInFlightLocked() {
  for (auto& [key, decision] : in_flight_) outbox_.try_emplace(key, std::move(decision));
  in_flight_.clear();
  in_flight_sequence_.reset();
}

std::optional<v1::SyncRequest> SyncClient::NextWriteLocked() {
  if (ack_.has_value() || chunk_ack_.has_value()) {
    v1::SyncRequest request;
    request.mutable_ack()->set_revision(std::exchange(ack_, std::nullopt).value_or(0));
    request.mutable_ack()->set_snapshot_chunks(
        std::exchange(chunk_ack_, std::nullopt).value_or(0));
    return request;
  }
  if (in_flight_sequence_.has_value() || outbox_.empty()) return std::nullopt;
  v1::SyncRequest request;
  v1::SyncDecisions* batch = request.mutable_decisions();
  const size_t budget = options_.max_message_bytes - kEnvelopeBytes;
  size_t bytes = 0;
  for (auto it = outbox_.begin(); it != outbox_.end();) {
    const size_t size = it->second.ByteSizeLong() + 8;
    if (batch->decisions_size() > 0 && bytes + size > budget) break;
    bytes += size;
    *batch->add_decisions() = it->second;
    in_flight_.insert(*it);
    outbox_.erase(it++);
  }
  batch->set_sequence(next_sequence_++);
  in_flight_sequence_ = batch->sequence();
  stats_.decisions_sent += batch->decisions_size();
  return request;
}

void SyncClient::WriteLoop(Stream* stream, int64_t generation) {
  while (true) {
    std::optional<v1::SyncRequest> next;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return stopping_ || stream_over_ || generation_ != generation || ack_.has_value() ||
               chunk_ack_.has_value() ||
               (!in_flight_sequence_.has_value() && !outbox_.empty());
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_ || stream_over_ || generation_ != generation) return;
      next = NextWriteLocked();
    }
    if (next.has_value() && !stream->Write(*next)) return;  // the reader sees the end
  }
}

}  // namespace chainscale
