#include "tools/reporter/report_stream.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/stream_channel.h"

namespace chainscale {
namespace {

// How often a wait for a connection looks whether Stop was called.
constexpr absl::Duration kStopPoll = absl::Milliseconds(100);
// Distinct failures remembered (not logged again) while no agent takes a report.
constexpr size_t kMaxLoggedFailures = 64;

std::string CodeName(int code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

}  // namespace

ReportStream::ReportStream(ReportStreamOptions options) : options_(std::move(options)) {}

ReportStream::~ReportStream() { Stop(); }

void ReportStream::Start() {
  thread_ = std::thread([this] { Run(); });
}

void ReportStream::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (context_ != nullptr) context_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

void ReportStream::Offer(v1::LoadReport report) {
  absl::MutexLock lock(&mu_);
  pending_ = std::move(report);
  ++offers_;
}

void ReportStream::Withdraw() {
  absl::MutexLock lock(&mu_);
  if (pending_.has_value()) settled_ = offers_;  // pending_ is always the latest offer
  pending_.reset();
}

bool ReportStream::Flush(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return settled_ == offers_ || stopping_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  return settled_ == offers_;
}

ReportStream::Stats ReportStream::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void ReportStream::Run() {
  Backoff backoff(options_.backoff);
  size_t index = 0;
  size_t failed_in_turn = 0;  // addresses that failed without an answer since the last one
  // Failures logged since the last answer: each is logged once, not at every retry.
  absl::flat_hash_set<std::string> logged;
  while (true) {
    const std::string& address = options_.agents[index];
    bool answered = false;
    const absl::Status why = RunStream(address, &answered);
    index = (index + 1) % options_.agents.size();
    failed_in_turn = answered ? 0 : failed_in_turn + 1;
    if (answered) {
      backoff.Reset();
      logged.clear();
    }
    absl::Duration delay = absl::ZeroDuration();
    if (failed_in_turn >= options_.agents.size()) {
      delay = backoff.Next();
      failed_in_turn = 0;
    }
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    if (logged.size() >= kMaxLoggedFailures) logged.clear();
    if (logged.insert(absl::StrCat(address, " ", why.message())).second) {
      LogWarning("report stream ended", {{"agent", address},
                                         {"error", std::string(why.message())},
                                         {"next", options_.agents[index]},
                                         {"retry_in", absl::FormatDuration(delay)}});
    }
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), delay);
    if (stopping_) return;
  }
}

absl::Status ReportStream::Connect(grpc::Channel& channel, const std::string& address) {
  const absl::Time deadline = absl::Now() + options_.connect_timeout;
  grpc_connectivity_state state = channel.GetState(/*try_to_connect=*/true);
  while (state != GRPC_CHANNEL_READY) {
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN) {
      return absl::UnavailableError(absl::StrCat("cannot connect to the agent at ", address));
    }
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return absl::CancelledError("stopping");
    }
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      return absl::UnavailableError(absl::StrCat("no connection to the agent at ", address,
                                                 " within ",
                                                 absl::FormatDuration(options_.connect_timeout)));
    }
    channel.WaitForStateChange(state, absl::ToChronoTime(std::min(deadline, now + kStopPoll)));
    state = channel.GetState(/*try_to_connect=*/true);
  }
  return absl::OkStatus();
}

absl::Status ReportStream::RunStream(const std::string& address, bool* answered) {
  {
    absl::MutexLock lock(&mu_);
    ++stats_.stream_attempts;
  }
  StreamChannelOptions channel_options;
  channel_options.credentials = options_.credentials;
  channel_options.own_connections = true;  // a new attempt is a new connection
  std::shared_ptr<grpc::Channel> channel = MakeStreamChannel(address, channel_options);
  if (absl::Status s = Connect(*channel, address); !s.ok()) return s;
  std::unique_ptr<v1::Agent::Stub> stub = v1::Agent::NewStub(channel);

  grpc::ClientContext context;
  if (!options_.api_key.empty()) {
    context.AddMetadata("authorization", absl::StrCat("Api-Key ", options_.api_key));
  }
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::CancelledError("stopping");
    context_ = &context;
    stream_over_ = false;
    end_reason_ = absl::OkStatus();
    awaiting_.clear();
    ++stats_.streams_opened;
    stats_.connected = true;
    stats_.agent = address;
  }
  LogInfo("report stream open", {{"agent", address}});
  std::unique_ptr<Stream> stream = stub->StreamLoad(&context);
  std::thread reader([&] { ReadAnswers(stream.get(), address, answered); });

  while (true) {
    v1::StreamLoadRequest request;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || stream_over_ || pending_.has_value();
      };
      const absl::Time answer_due = awaiting_.empty()
                                        ? absl::InfiniteFuture()
                                        : awaiting_.front().written_at + options_.answer_timeout;
      mu_.AwaitWithDeadline(absl::Condition(&ready), answer_due);
      if (stopping_ || stream_over_) break;
      if (!awaiting_.empty() && absl::Now() >= answer_due) {
        EndStreamLocked(absl::DeadlineExceededError(
            absl::StrCat("the agent at ", address, " did not answer within ",
                         absl::FormatDuration(options_.answer_timeout))));
        break;
      }
      if (!pending_.has_value()) continue;
      const uint64_t sequence = next_sequence_++;
      request.set_sequence(sequence);
      *request.add_reports() = std::move(*pending_);
      pending_.reset();
      awaiting_.push_back({sequence, absl::Now(), offers_});
      ++stats_.reports_sent;
    }
    if (!stream->Write(request)) break;  // the stream broke; the reader sees how
  }

  {
    absl::MutexLock lock(&mu_);
    stream_over_ = true;
  }
  context.TryCancel();  // ends a Read in progress
  reader.join();
  const grpc::Status status = stream->Finish();
  absl::MutexLock lock(&mu_);
  context_ = nullptr;
  stats_.connected = false;
  stats_.agent.clear();
  awaiting_.clear();  // unanswered reports are not sent again: a newer one will be
  if (!end_reason_.ok()) return end_reason_;
  if (stopping_) return absl::CancelledError("stopping");
  return absl::UnavailableError(
      absl::StrCat("the agent at ", address, " ended the stream: ", CodeName(status.error_code()),
                   status.error_message().empty() ? "" : ": ", status.error_message()));
}

void ReportStream::ReadAnswers(Stream* stream, const std::string& address, bool* answered) {
  v1::StreamLoadResponse response;
  while (stream->Read(&response)) {
    absl::MutexLock lock(&mu_);
    if (awaiting_.empty() || response.sequence() != awaiting_.front().sequence) {
      EndStreamLocked(absl::InternalError(absl::StrCat(
          "the agent at ", address, " answered sequence ", response.sequence(), ", expected ",
          awaiting_.empty() ? std::string("none") : absl::StrCat(awaiting_.front().sequence))));
      return;
    }
    settled_ = std::max(settled_, awaiting_.front().offer);
    awaiting_.pop_front();
    stats_.reports_accepted += response.accepted();
    stats_.reports_rejected += response.rejections_size();
    std::optional<absl::Status> move_on;
    for (const v1::ReportRejection& rejection : response.rejections()) {
      NoteRefusalLocked(rejection);
      // The agent could not reach the owner, or does not serve the chainlet: another
      // agent may.
      if (rejection.code() == static_cast<int>(absl::StatusCode::kUnavailable) ||
          rejection.code() == static_cast<int>(absl::StatusCode::kFailedPrecondition)) {
        move_on = absl::UnavailableError(absl::StrCat("the agent at ", address,
                                                      " refused: ", CodeName(rejection.code()),
                                                      ": ", rejection.message()));
      }
    }
    if (response.accepted() > 0 && !last_refusal_.empty()) {
      LogInfo("reports accepted again", {{"agent", address}});
      last_refusal_.clear();
    }
    if (move_on.has_value()) {
      EndStreamLocked(*move_on);
      return;
    }
    *answered = true;  // an agent that takes reports for the chainlet
  }
  absl::MutexLock lock(&mu_);
  stream_over_ = true;
}

void ReportStream::EndStreamLocked(absl::Status reason) {
  if (stream_over_) return;
  stream_over_ = true;
  end_reason_ = std::move(reason);
  if (context_ != nullptr) context_->TryCancel();
}

void ReportStream::NoteRefusalLocked(const v1::ReportRejection& rejection) {
  std::string refusal = absl::StrCat(CodeName(rejection.code()), ": ", rejection.message());
  if (refusal == last_refusal_) return;
  LogWarning("the agent refused the report", {{"agent", stats_.agent}, {"error", refusal}});
  last_refusal_ = std::move(refusal);
}

}  // namespace chainscale
