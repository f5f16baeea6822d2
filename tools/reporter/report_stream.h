// ReportStream: the reporter's one long-lived chainscale.v1.Agent/StreamLoad stream. It
// sends the latest offered report (a report not yet sent is replaced by a newer one, and
// dropped on Withdraw) and reads the answers, which must come in request order
// (StreamLoadResponse.sequence).
//
// Any agent takes any report (DESIGN §11: one that does not own the chainlet's
// environment forwards it to the owner), so the stream goes to one of several addresses.
// It moves to the next address when the current one cannot be reached, ends the stream
// (UNAVAILABLE when the agent shuts down), answers out of order or not within
// `answer_timeout`, or refuses a report as UNAVAILABLE (it could not reach the owner) or
// FAILED_PRECONDITION (its --selector leaves the environment out). After every address
// has failed in turn it waits a jittered, growing delay (common/backoff.h), reset once an
// agent takes a report; each way a stream failed is logged once until then, not at every
// retry. Other refusals (NOT_FOUND: no such
// chainlet; INVALID_ARGUMENT) are counted and logged when they start or change, and the
// stream stays: another agent would answer the same.
#ifndef CHAINSCALE_TOOLS_REPORTER_REPORT_STREAM_H_
#define CHAINSCALE_TOOLS_REPORTER_REPORT_STREAM_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "chainscale/v1/agent.grpc.pb.h"
#include "common/backoff.h"
#include "tools/reporter/load_scraper.h"

namespace chainscale {

struct ReportStreamOptions {
  std::vector<std::string> agents;  // host:port, tried in order
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  std::string api_key;  // sent as "authorization: Api-Key <key>" when not empty
  // Delay after every address has failed in turn.
  BackoffOptions backoff = {absl::Seconds(1), 1.6, absl::Seconds(30), 0.2};
  absl::Duration connect_timeout = absl::Seconds(5);
  // A report unanswered this long after it was written ends the stream.
  absl::Duration answer_timeout = absl::Seconds(5);
};

class ReportStream final : public ReportSink {
 public:
  struct Stats {
    int64_t reports_sent = 0;      // written on a stream
    int64_t reports_accepted = 0;  // answered as taken in
    int64_t reports_rejected = 0;  // answered with a rejection
    int64_t stream_attempts = 0;   // streams tried (connected or not), the first included
    int64_t streams_opened = 0;    // streams connected, the first included
    bool connected = false;        // a stream is open now
    std::string agent;             // the address of the open stream; empty when none
  };

  explicit ReportStream(ReportStreamOptions options);
  ~ReportStream() override;  // stops

  // Starts the sending thread. Call once.
  void Start();
  // Ends the stream and the thread; idempotent, returns promptly whatever the agent does.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  void Offer(v1::LoadReport report) override ABSL_LOCKS_EXCLUDED(mu_);
  void Withdraw() override ABSL_LOCKS_EXCLUDED(mu_);

  // Waits until an agent has answered the latest offer (or it was withdrawn): for a
  // process on its way out, whose last report (0 once drained) should reach the agent
  // before Stop. False when `timeout` passes first or the stream is stopped; a report
  // lost with a broken stream is not sent again, so only a newer offer settles it then.
  bool Flush(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);

  Stats stats() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  using Stream = grpc::ClientReaderWriter<v1::StreamLoadRequest, v1::StreamLoadResponse>;

  void Run();
  // One stream to `address`, from connecting to its end: why it ended.
  absl::Status RunStream(const std::string& address, bool* answered) ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until `channel` is connected; UNAVAILABLE when it fails, or the connect timeout
  // passes, CANCELLED on Stop.
  absl::Status Connect(grpc::Channel& channel, const std::string& address) ABSL_LOCKS_EXCLUDED(mu_);
  // Reads answers until the stream ends; checks their order. Ends the stream (with
  // end_reason_) on an answer out of order or a refusal that calls for another agent.
  void ReadAnswers(Stream* stream, const std::string& address, bool* answered)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Ends the current stream with `reason`, unless it is already ending.
  void EndStreamLocked(absl::Status reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Logs a refusal when it differs from the last one logged.
  void NoteRefusalLocked(const v1::ReportRejection& rejection) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ReportStreamOptions options_;
  std::thread thread_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<v1::LoadReport> pending_ ABSL_GUARDED_BY(mu_);
  // Offers are numbered from 1; `settled_` is the latest one answered or withdrawn.
  uint64_t offers_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t settled_ ABSL_GUARDED_BY(mu_) = 0;
  // The stream in progress, if any.
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool stream_over_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status end_reason_ ABSL_GUARDED_BY(mu_);
  struct Awaiting {
    uint64_t sequence;
    absl::Time written_at;
    uint64_t offer;  // the offer it carries
  };
  std::deque<Awaiting> awaiting_ ABSL_GUARDED_BY(mu_);  // written, not yet answered
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 1;
  std::string last_refusal_ ABSL_GUARDED_BY(mu_);  // logged; empty after an acceptance
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace chainscale

#endif  // CHAINSCALE_TOOLS_REPORTER_REPORT_STREAM_H_
