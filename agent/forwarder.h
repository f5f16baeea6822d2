// ReportForwarder: hands load reports for chain environments this agent does not own to
// the agent that does (DESIGN §11 "Reports go anywhere"), over the owner's own
// chainscale.v1.Agent/StreamLoad.
//
// One long-lived stream per peer address, opened on first use and reused by every later
// call; one request written at a time; answers matched to requests by their sequence.
// Each peer holds a bounded number of reports waiting to be written or answered; a call
// that would go beyond it is answered UNAVAILABLE at once. A stream that breaks fails
// what it carried (UNAVAILABLE); the next call opens a new stream, unless the peer is
// backing off (a stream that never got an answer, or one that stopped answering), in
// which case calls fail at once until the delay has passed. Peers unused for a while are
// dropped, and so is their stream.
//
// Every call's `done` runs exactly once: from a gRPC thread when the owner answers or the
// stream fails, or before Forward returns when the call is refused at once. It must not
// block.
#ifndef CHAINSCALE_AGENT_FORWARDER_H_
#define CHAINSCALE_AGENT_FORWARDER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "chainscale/v1/agent.grpc.pb.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/stream_channel.h"

namespace chainscale {

struct ForwarderOptions {
  // Credentials and limits of the channels to peers (the agent's own TLS, as its Sync
  // stream uses); `reconnect` defaults to `backoff` below.
  StreamChannelOptions channel;
  // Sent to peers as "authorization: Bearer <token>"; empty: no authorization.
  std::string token;
  // Reports per StreamLoad request: the owner refuses larger ones whole
  // (DecisionLoopOptions::max_reports_per_batch). Larger calls are split.
  int max_reports_per_request = 10'000;
  // Per peer: reports (and their encoded bytes) waiting to be written or answered.
  size_t max_held_reports = 20'000;
  size_t max_held_bytes = 8 << 20;
  // A request the owner has not answered this long after it was queued ends its stream.
  absl::Duration answer_timeout = absl::Seconds(5);
  // Delays before a peer whose stream failed is tried again.
  BackoffOptions backoff = {absl::Seconds(1), 1.6, absl::Seconds(30), 0.2};
  // A peer with nothing held and unused this long is dropped with its stream.
  absl::Duration idle_timeout = absl::Minutes(5);
  // Peers held at once; a new peer replaces the least recently used idle one.
  size_t max_peers = 64;
  // How often timeouts are checked; zero: never by itself (the caller calls Sweep).
  absl::Duration sweep_interval = absl::Seconds(1);
  const Clock* clock = &RealClock::Get();
};

// What became of one Forward call.
struct ForwardResult {
  // OK: the owner answered every report (accepted or rejected). UNAVAILABLE: the owner
  // could not be reached or stopped answering, this agent holds too much for it already,
  // or the agent is shutting down; retrying later is safe (a report is a source's latest
  // value). INVALID_ARGUMENT, nothing sent: a report too large for one message, or more
  // reports or bytes than the per-peer bound (retrying could never succeed).
  absl::Status status;
  // Reports the owner took in; with an error, those it took in before the error.
  int accepted = 0;
  // Reports the owner refused, `index` into the vector given to Forward, `code` what
  // ReportLoad would answer.
  std::vector<v1::ReportRejection> rejections;
};

// Counters since the forwarder started, over all peers; the last four are current.
struct ForwarderStats {
  int64_t forwarded = 0;      // reports taken for forwarding
  int64_t accepted = 0;       // reports the owners took in
  int64_t rejected = 0;       // reports the owners refused
  int64_t unreachable = 0;    // reports answered UNAVAILABLE: stream failed or backing off
  int64_t buffer_full = 0;    // reports answered UNAVAILABLE: too much held for the peer
  int64_t shutting_down = 0;  // reports answered UNAVAILABLE by Shutdown
  int64_t streams_opened = 0;
  int64_t requests_sent = 0;
  int64_t peers = 0;         // peers known now
  int64_t streams_live = 0;  // streams not yet done
  int64_t held_reports = 0;  // reports waiting to be written or answered
  int64_t held_bytes = 0;
};

class ReportForwarder {
 public:
  using Done = std::function<void(ForwardResult)>;

  explicit ReportForwarder(ForwarderOptions options);
  ~ReportForwarder();  // shuts down

  // Sends `reports` to the agent at `peer_address` (host:port) and calls `done` once
  // with its answer (see ForwardResult); a call refused at once is answered before
  // Forward returns. Never blocks on the network; may be called from gRPC reactions.
  void Forward(const std::string& peer_address, std::vector<v1::LoadReport> reports, Done done)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Forward, waiting for the answer. Not for gRPC reactions.
  ForwardResult ForwardAndWait(const std::string& peer_address, std::vector<v1::LoadReport> reports)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Ends streams whose oldest request went unanswered past answer_timeout, drops peers
  // idle past idle_timeout and frees dropped peers' channels. Runs every sweep_interval
  // by itself. Not for gRPC reactions (channels must not be destroyed on gRPC's threads).
  void Sweep() ABSL_LOCKS_EXCLUDED(mu_);

  // Answers every call in progress and every later one UNAVAILABLE ("agent shutting
  // down"), cancels the streams and returns once every `done` has run. Idempotent. Not
  // from a `done` or a gRPC reaction (it waits for them).
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  ForwarderStats Stats() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Call;
  struct Chunk;
  struct Peer;
  class PeerStream;

  using Ready = std::vector<std::shared_ptr<Call>>;

  // The peer for `address`, made (dropping the least recently used idle peer when all
  // slots are taken) if needed; null when every slot holds a peer with reports held.
  Peer* PeerLocked(const std::string& address, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Closes the peer's stream and retires the peer until its streams are done.
  void DropPeerLocked(const std::string& address) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Retired peers whose streams are done, to be destroyed outside the lock and off gRPC's
  // threads (Sweep, Shutdown).
  std::vector<std::unique_ptr<Peer>> TakeFreeablePeersLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A chunk's end: answered by the owner, or failed with `status` and counted in
  // `counter`. A call whose last chunk this was goes to `ready`, to be answered outside
  // the lock.
  void AnswerLocked(Peer& peer, Chunk& chunk, const v1::StreamLoadResponse& response, Ready& ready)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FailLocked(Peer& peer, Chunk& chunk, const absl::Status& status,
                  int64_t ForwarderStats::*counter, Ready& ready)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleaseLocked(Peer& peer, Chunk& chunk, Ready& ready) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void Answer(Ready& ready);
  void RunSweeper() ABSL_LOCKS_EXCLUDED(mu_);

  const ForwarderOptions options_;
  const Clock& clock_;
  const StreamChannelOptions channel_options_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<std::string, std::unique_ptr<Peer>> peers_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Peer>> retired_ ABSL_GUARDED_BY(mu_);
  ForwarderStats stats_ ABSL_GUARDED_BY(mu_);
  std::thread sweeper_;
};

}  // namespace chainscale

#endif  // CHAINSCALE_AGENT_FORWARDER_H_
