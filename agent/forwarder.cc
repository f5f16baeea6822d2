#include "agent/forwarder.h"

#include <algorithm>
#include <deque>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/log.h"

namespace chainscale {
namespace {

// Room left in a request for its envelope (sequence, framing).
constexpr size_t kEnvelopeBytes = 1024;

// A report's share of an encoded request: its own bytes, field tag and length prefix.
size_t EncodedBytes(const v1::LoadReport& report) { return report.ByteSizeLong() + 6; }

// Every way of not reaching the owner answers UNAVAILABLE, a full buffer included: DESIGN
// §11 promises reporters UNAVAILABLE whenever their report cannot reach its owner, and to
// the reporter a full buffer is exactly that (the owner is slower than the reports sent
// its way). RESOURCE_EXHAUSTED would tell it that it, not the path to the owner, is over
// a limit. Either way the reporter retries later, and a report is a source's latest value,
// so a retry never counts twice.
absl::Status Unavailable(absl::string_view what) { return absl::UnavailableError(what); }

StreamChannelOptions ChannelOptions(const ForwarderOptions& options) {
  StreamChannelOptions channel = options.channel;
  if (!channel.reconnect.has_value()) channel.reconnect = options.backoff;
  return channel;
}

}  // namespace

// One Forward call, shared by its chunks until the last one is answered or failed.
struct ReportForwarder::Call {
  Done done;
  ForwardResult result;
  size_t chunks_left = 0;
};

// The reports of one StreamLoad request.
struct ReportForwarder::Chunk {
  std::shared_ptr<Call> call;
  int offset = 0;  // index of its first report in the call's vector
  int reports = 0;
  size_t bytes = 0;
  absl::Time queued_at;
  std::unique_ptr<v1::StreamLoadRequest> request;  // until it is written
};

struct ReportForwarder::Peer {
  Peer(std::string address, const StreamChannelOptions& channel, const BackoffOptions& backoff)
      : address(std::move(address)),
        stub(v1::Agent::NewStub(MakeStreamChannel(this->address, channel))),
        backoff(backoff) {}

  const std::string address;
  const std::unique_ptr<v1::Agent::Stub> stub;
  // Guarded by the forwarder's mu_.
  PeerStream* stream = nullptr;  // the open stream, if any
  Backoff backoff;
  absl::Time retry_at = absl::InfinitePast();  // no new stream before
  absl::Time last_used;
  size_t held_reports = 0;
  size_t held_bytes = 0;
  int streams = 0;  // streams not yet done
};

// One StreamLoad call to a peer. Its state is guarded by the forwarder's mu_. Writes are
// started from Forward (outside reactions) as well as from OnWriteDone, so a hold keeps
// the call from completing until the stream is closed (no write starts after that).
class ReportForwarder::PeerStream final
    : public grpc::ClientBidiReactor<v1::StreamLoadRequest, v1::StreamLoadResponse> {
 public:
  PeerStream(ReportForwarder* forwarder, Peer* peer) : forwarder_(forwarder), peer_(peer) {
    ++peer_->streams;
    AddBearerToken(context_, forwarder_->options_.token);
    peer_->stub->async()->StreamLoad(&context_, this);
    AddHold();
    StartRead(&response_);
    StartCall();
  }

  void EnqueueLocked(std::vector<Chunk> chunks, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(forwarder_->mu_) {
    for (Chunk& chunk : chunks) {
      chunk.queued_at = now;
      unsent_.push_back(std::move(chunk));
    }
    WriteNextLocked();
  }

  // When the oldest chunk still unanswered was queued; InfiniteFuture for none.
  absl::Time OldestQueuedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(forwarder_->mu_) {
    if (!awaiting_.empty()) return awaiting_.front().chunks.front().queued_at;
    if (!unsent_.empty()) return unsent_.front().queued_at;
    return absl::InfiniteFuture();
  }

  // No more writes; what the stream holds fails at OnDone with `reason` (or, when it is
  // OK, with the call's status), counted in `counter`. The peer backs off before its next
  // stream when `backoff`. Cancels the call when `cancel`.
  void CloseLocked(const absl::Status& reason, int64_t ForwarderStats::*counter, bool backoff,
                   bool cancel) ABSL_EXCLUSIVE_LOCKS_REQUIRED(forwarder_->mu_) {
    if (closed_) return;
    closed_ = true;
    end_reason_ = reason;
    end_counter_ = counter;
    if (peer_->stream == this) {
      peer_->stream = nullptr;
      if (backoff) {
        peer_->retry_at = forwarder_->clock_.Now() + peer_->backoff.Next();
      } else {
        peer_->backoff.Reset();
      }
    }
    if (cancel) context_.TryCancel();
    RemoveHold();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&forwarder_->mu_);
    writing_.reset();
    if (ok) WriteNextLocked();  // otherwise the read side sees the stream end
  }

  void OnReadDone(bool ok) override {
    Ready ready;
    {
      absl::MutexLock lock(&forwarder_->mu_);
      if (!ok) {
        // The owner ended the stream or it broke. One that never answered (refused
        // connection, authentication) is not tried again at once.
        CloseLocked(absl::OkStatus(), &ForwarderStats::unreachable, /*backoff=*/!answered_,
                    /*cancel=*/false);
        return;
      }
      if (awaiting_.empty() || response_.sequence() != awaiting_.front().sequence) {
        CloseLocked(
            Unavailable(absl::StrCat("owner at ", peer_->address,
                                     " answered an unexpected sequence ", response_.sequence())),
            &ForwarderStats::unreachable, /*backoff=*/true, /*cancel=*/true);
        return;
      }
      answered_ = true;
      Written written = std::move(awaiting_.front());
      awaiting_.pop_front();
      AnswerChunksLocked(written, ready);
      StartRead(&response_);
    }
    Answer(ready);
  }

  void OnDone(const grpc::Status& status) override {
    ReportForwarder* const forwarder = forwarder_;
    Ready ready;
    std::string address;
    absl::Status why;
    bool unexpected = false;  // not ended by this side
    {
      absl::MutexLock lock(&forwarder->mu_);
      // closed_ holds here: the hold keeps OnDone away until CloseLocked.
      address = peer_->address;
      why = end_reason_;
      if (why.ok()) {
        unexpected = !status.ok();
        why = Unavailable(absl::StrCat(
            "stream to owner at ", address, " ended: ",
            absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())),
            status.error_message().empty() ? "" : ": ", status.error_message()));
      }
      for (Written& written : awaiting_) {
        for (Chunk& chunk : written.chunks) {
          forwarder->FailLocked(*peer_, chunk, why, end_counter_, ready);
        }
      }
      awaiting_.clear();
      for (Chunk& chunk : unsent_) forwarder->FailLocked(*peer_, chunk, why, end_counter_, ready);
      unsent_.clear();
      // The peer (and its channel) may be freed from here on, never on this thread: a
      // channel destroyed in a reaction can take gRPC's callback threads down with it.
      --peer_->streams;
    }
    if (unexpected) {
      LogWarning("forwarding stream ended",
                 {{"peer", address}, {"error", std::string(why.message())}});
    }
    Answer(ready);
    delete this;
    // Last: Shutdown returns once every stream is done and every call answered.
    absl::MutexLock lock(&forwarder->mu_);
    --forwarder->stats_.streams_live;
  }

 private:
  // One request written: the chunks it carries, in order, until it is answered.
  struct Written {
    uint64_t sequence = 0;
    std::vector<Chunk> chunks;
  };

  // Writes the oldest unsent chunk, with the chunks queued behind it while the previous
  // write was in flight as far as one request takes them (reports and bytes): many
  // callers' small batches share a request, so one stream keeps up with many reporters.
  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(forwarder_->mu_) {
    if (closed_ || writing_ != nullptr || unsent_.empty()) return;
    const int max_reports = std::max(1, forwarder_->options_.max_reports_per_request);
    const size_t budget = forwarder_->channel_options_.max_message_bytes - kEnvelopeBytes;
    Written& written = awaiting_.emplace_back();
    written.sequence = next_sequence_++;
    // The request is kept apart: its answer may be read before its write completes.
    writing_ = std::move(unsent_.front().request);
    int reports = unsent_.front().reports;
    size_t bytes = unsent_.front().bytes;
    written.chunks.push_back(std::move(unsent_.front()));
    unsent_.pop_front();
    while (!unsent_.empty() && reports + unsent_.front().reports <= max_reports &&
           bytes + unsent_.front().bytes <= budget) {
      Chunk& next = unsent_.front();
      for (v1::LoadReport& r : *next.request->mutable_reports()) {
        *writing_->add_reports() = std::move(r);
      }
      next.request.reset();
      reports += next.reports;
      bytes += next.bytes;
      written.chunks.push_back(std::move(next));
      unsent_.pop_front();
    }
    writing_->set_sequence(written.sequence);
    ++forwarder_->stats_.requests_sent;
    StartWrite(writing_.get());
  }

  // Hands each chunk of `written` its part of the owner's answer (response_).
  void AnswerChunksLocked(Written& written, Ready& ready)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(forwarder_->mu_) {
    int total = 0;
    for (const Chunk& chunk : written.chunks) total += chunk.reports;
    if (response_.accepted() + response_.rejections_size() != total) {
      // Refused whole (an owner with a smaller batch cap): every chunk is, the same way.
      for (Chunk& chunk : written.chunks) {
        forwarder_->AnswerLocked(*peer_, chunk, response_, ready);
      }
      return;
    }
    int start = 0;
    int r = 0;  // rejections come ordered by index
    for (Chunk& chunk : written.chunks) {
      v1::StreamLoadResponse part;
      for (; r < response_.rejections_size() &&
             response_.rejections(r).index() < start + chunk.reports;
           ++r) {
        v1::ReportRejection* rejection = part.add_rejections();
        *rejection = response_.rejections(r);
        rejection->set_index(rejection->index() - start);
      }
      part.set_accepted(chunk.reports - part.rejections_size());
      start += chunk.reports;
      forwarder_->AnswerLocked(*peer_, chunk, part, ready);
    }
  }

  ReportForwarder* const forwarder_;
  Peer* const peer_;  // outlives the stream: freed only once its streams are done
  grpc::ClientContext context_;
  v1::StreamLoadResponse response_;  // read reactions only: one read at a time
  // Guarded by the forwarder's mu_.
  std::unique_ptr<v1::StreamLoadRequest> writing_;
  std::deque<Chunk> unsent_;
  std::deque<Written> awaiting_;  // in write order, until answered
  uint64_t next_sequence_ = 1;
  bool closed_ = false;
  bool answered_ = false;
  absl::Status end_reason_;
  int64_t ForwarderStats::*end_counter_ = &ForwarderStats::unreachable;
};

ReportForwarder::ReportForwarder(ForwarderOptions options)
    : options_(std::move(options)),
      clock_(*options_.clock),
      channel_options_(ChannelOptions(options_)) {
  if (options_.sweep_interval > absl::ZeroDuration()) {
    sweeper_ = std::thread([this] { RunSweeper(); });
  }
}

ReportForwarder::~ReportForwarder() { Shutdown(); }

void ReportForwarder::Forward(const std::string& peer_address, std::vector<v1::LoadReport> reports,
                              Done done) {
  auto call = std::make_shared<Call>();
  call->done = std::move(done);
  if (reports.empty()) {
    call->done(ForwardResult{});
    return;
  }
  // Requests are built before taking the lock.
  const size_t budget = channel_options_.max_message_bytes - kEnvelopeBytes;
  const size_t per_request = static_cast<size_t>(std::max(1, options_.max_reports_per_request));
  std::vector<Chunk> chunks;
  size_t total_bytes = 0;
  for (size_t i = 0; i < reports.size(); ++i) {
    const size_t bytes = EncodedBytes(reports[i]);
    if (bytes > budget) {
      call->done({absl::InvalidArgumentError(absl::StrCat("reports[", i, "] is ", bytes,
                                                          " bytes encoded; a forwarded report "
                                                          "must fit in ",
                                                          budget)),
                  0,
                  {}});
      return;
    }
    if (chunks.empty() || chunks.back().reports == static_cast<int>(per_request) ||
        chunks.back().bytes + bytes > budget) {
      Chunk& chunk = chunks.emplace_back();
      chunk.call = call;
      chunk.offset = static_cast<int>(i);
      chunk.request = std::make_unique<v1::StreamLoadRequest>();
    }
    Chunk& chunk = chunks.back();
    *chunk.request->add_reports() = std::move(reports[i]);
    ++chunk.reports;
    chunk.bytes += bytes;
    total_bytes += bytes;
  }
  const size_t count = reports.size();
  if (count > options_.max_held_reports || total_bytes > options_.max_held_bytes) {
    // Could never be taken, so not UNAVAILABLE: retrying would not help.
    call->done({absl::InvalidArgumentError(absl::StrCat(count, " reports (", total_bytes,
                                                        " bytes) are more than this agent "
                                                        "holds for one owner (",
                                                        options_.max_held_reports, " reports, ",
                                                        options_.max_held_bytes,
                                                        " bytes); send smaller batches")),
                0,
                {}});
    return;
  }

  absl::Status refusal;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_.Now();
    Peer* peer = stopping_ ? nullptr : PeerLocked(peer_address, now);
    if (peer != nullptr) peer->last_used = now;
    if (stopping_) {
      refusal = Unavailable("agent shutting down");
      stats_.shutting_down += count;
    } else if (peer == nullptr) {
      refusal = Unavailable(
          absl::StrCat("forwarding to ", options_.max_peers, " owners already; try again later"));
      stats_.buffer_full += count;
    } else if (peer->stream == nullptr && now < peer->retry_at) {
      refusal = Unavailable(absl::StrCat("owner at ", peer_address, " is unreachable; next try in ",
                                         absl::FormatDuration(peer->retry_at - now)));
      stats_.unreachable += count;
    } else if (peer->held_reports + count > options_.max_held_reports ||
               peer->held_bytes + total_bytes > options_.max_held_bytes) {
      refusal = Unavailable(absl::StrCat(
          "owner at ", peer_address, " is behind: ", peer->held_reports, " reports wait for it"));
      stats_.buffer_full += count;
    } else {
      if (peer->stream == nullptr) {
        peer->stream = new PeerStream(this, peer);
        ++stats_.streams_opened;
        ++stats_.streams_live;
      }
      peer->held_reports += count;
      peer->held_bytes += total_bytes;
      stats_.held_reports += count;
      stats_.held_bytes += total_bytes;
      stats_.forwarded += count;
      call->chunks_left = chunks.size();
      peer->stream->EnqueueLocked(std::move(chunks), now);
      return;
    }
  }
  call->done({std::move(refusal), 0, {}});
}

ForwardResult ReportForwarder::ForwardAndWait(const std::string& peer_address,
                                              std::vector<v1::LoadReport> reports) {
  ForwardResult result;
  absl::Notification answered;
  Forward(peer_address, std::move(reports), [&](ForwardResult r) {
    result = std::move(r);
    answered.Notify();
  });
  answered.WaitForNotification();
  return result;
}

void ReportForwarder::Sweep() {
  std::vector<std::unique_ptr<Peer>> freeable;  // destroyed after the lock is released
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_.Now();
  std::vector<std::string> idle;
  for (auto& [address, peer] : peers_) {
    if (peer->stream != nullptr &&
        peer->stream->OldestQueuedLocked() + options_.answer_timeout <= now) {
      peer->stream->CloseLocked(
          Unavailable(absl::StrCat("owner at ", address, " did not answer within ",
                                   absl::FormatDuration(options_.answer_timeout))),
          &ForwarderStats::unreachable, /*backoff=*/true, /*cancel=*/true);
    }
    if (peer->held_reports == 0 && now - peer->last_used >= options_.idle_timeout) {
      idle.push_back(address);
    }
  }
  for (const std::string& address : idle) DropPeerLocked(address);
  freeable = TakeFreeablePeersLocked();
}

void ReportForwarder::Shutdown() {
  std::vector<std::unique_ptr<Peer>> freeable;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    while (!peers_.empty()) DropPeerLocked(peers_.begin()->first);
    auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stats_.streams_live == 0; };
    mu_.Await(absl::Condition(&done));
    freeable = TakeFreeablePeersLocked();
  }
  freeable.clear();  // channels go outside the lock: their end may wait for gRPC's threads
  if (sweeper_.joinable()) sweeper_.join();
}

ForwarderStats ReportForwarder::Stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

ReportForwarder::Peer* ReportForwarder::PeerLocked(const std::string& address, absl::Time now) {
  if (auto it = peers_.find(address); it != peers_.end()) return it->second.get();
  if (peers_.size() >= options_.max_peers) {
    const Peer* oldest = nullptr;
    for (const auto& [_, peer] : peers_) {
      if (peer->held_reports == 0 && (oldest == nullptr || peer->last_used < oldest->last_used)) {
        oldest = peer.get();
      }
    }
    if (oldest == nullptr) return nullptr;
    DropPeerLocked(oldest->address);
  }
  auto peer = std::make_unique<Peer>(address, channel_options_, options_.backoff);
  peer->last_used = now;
  Peer* const result = peer.get();
  peers_.emplace(address, std::move(peer));
  stats_.peers = static_cast<int64_t>(peers_.size());
  return result;
}

void ReportForwarder::DropPeerLocked(const std::string& address) {
  auto it = peers_.find(address);
  if (it == peers_.end()) return;
  if (PeerStream* stream = it->second->stream) {
    stream->CloseLocked(Unavailable(stopping_ ? "agent shutting down"
                                              : absl::StrCat("stream to ", address, " closed")),
                        stopping_ ? &ForwarderStats::shutting_down : &ForwarderStats::unreachable,
                        /*backoff=*/false, /*cancel=*/true);
  }
  retired_.push_back(std::move(it->second));
  peers_.erase(it);
  stats_.peers = static_cast<int64_t>(peers_.size());
}

std::vector<std::unique_ptr<ReportForwarder::Peer>> ReportForwarder::TakeFreeablePeersLocked() {
  std::vector<std::unique_ptr<Peer>> freeable;
  for (auto it = retired_.begin(); it != retired_.end();) {
    if ((*it)->streams == 0) {
      freeable.push_back(std::move(*it));
      it = retired_.erase(it);
    } else {
      ++it;
    }
  }
  return freeable;
}

void ReportForwarder::AnswerLocked(Peer& peer, Chunk& chunk, const v1::StreamLoadResponse& response,
                                   Ready& ready) {
  ForwardResult& result = chunk.call->result;
  result.accepted += response.accepted();
  stats_.accepted += response.accepted();
  stats_.rejected += response.rejections_size();
  for (const v1::ReportRejection& rejection : response.rejections()) {
    v1::ReportRejection& r = result.rejections.emplace_back(rejection);
    r.set_index(rejection.index() + chunk.offset);
  }
  ReleaseLocked(peer, chunk, ready);
}

void ReportForwarder::FailLocked(Peer& peer, Chunk& chunk, const absl::Status& status,
                                 int64_t ForwarderStats::*counter, Ready& ready) {
  if (chunk.call->result.status.ok()) chunk.call->result.status = status;
  stats_.*counter += chunk.reports;
  ReleaseLocked(peer, chunk, ready);
}

void ReportForwarder::ReleaseLocked(Peer& peer, Chunk& chunk, Ready& ready) {
  peer.held_reports -= chunk.reports;
  peer.held_bytes -= chunk.bytes;
  stats_.held_reports -= chunk.reports;
  stats_.held_bytes -= static_cast<int64_t>(chunk.bytes);
  if (--chunk.call->chunks_left == 0) ready.push_back(std::move(chunk.call));
}

void ReportForwarder::Answer(Ready& ready) {
  for (std::shared_ptr<Call>& call : ready) call->done(std::move(call->result));
}

void ReportForwarder::RunSweeper() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.sweep_interval)) return;
    }
    Sweep();
  }
}

}  // namespace chainscale
