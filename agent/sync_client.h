// SyncClient: the agent's end of the Sync stream. A reader thread connects to the control
// plane, says hello with the cache's applied revision and cluster id, applies the
// snapshots and changes it receives to the SettingsCache (a change sent in parts is
// applied at its last part) and reconnects with jittered exponential backoff when the
// stream ends. A writer thread sends acks and the agent's decisions.
//
// Decisions never wait on the network (DESIGN §5): SendDecisions only records the latest
// decision per chainlet in an outbox; the writer sends them in messages of at most 1 MiB,
// one message in flight, and drops each only once the control plane acknowledges it
// (decisions_ack), so nothing is lost across reconnects. Keepalive detects a control
// plane that stopped answering, and Stop returns promptly whatever the peer does.
#ifndef CHAINSCALE_AGENT_SYNC_CLIENT_H_
#define CHAINSCALE_AGENT_SYNC_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "agent/settings_cache.h"
#include "chainscale/v1/control_plane.grpc.pb.h"
#include "common/backoff.h"

namespace chainscale {

struct SyncClientOptions {
  std::string control_plane = "127.0.0.1:50051";
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  std::string agent_id;
  std::string token;  // sent as "authorization: Bearer <token>" when not empty
  v1::Selector selector;
  BackoffOptions backoff;
  // Largest message either way (the control plane's limit, DESIGN §5).
  size_t max_message_bytes = 1 << 20;
  // Where peers and reporters reach this agent, sent in the hello (DESIGN §11).
  std::string advertise_address;
  // Called on the reader thread with each owners message (DESIGN §11).
  std::function<void(const v1::SyncOwners&)> on_owners;
};

class SyncClient {
 public:
  struct Stats {
    int64_t streams = 0;    // streams opened
    int64_t snapshots = 0;  // complete snapshots applied
    int64_t changes = 0;    // changes applied
    int64_t rejected = 0;   // changes refused for going backwards
    int64_t decisions_sent = 0;     // decisions written (resends included)
    int64_t decisions_stored = 0;   // acknowledged as stored
    int64_t decisions_refused = 0;  // acknowledged as refused
    int last_end_code = -1;  // grpc::StatusCode the last stream ended with; -1: none yet
  };

  // `cache` must outlive the client.
  SyncClient(SyncClientOptions options, SettingsCache* cache);
  ~SyncClient();  // stops

  void Start();
  // Ends the stream and the threads; idempotent. Returns promptly even when the control
  // plane does not answer.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);
  // Cancels the current stream (as a network cut would); the client reconnects.
  void DropStream() ABSL_LOCKS_EXCLUDED(mu_);

  // Records the latest decision of each chainlet for sending. Never blocks on the network.
  void SendDecisions(const std::vector<v1::ScalingDecision>& decisions) ABSL_LOCKS_EXCLUDED(mu_);

  bool connected() const ABSL_LOCKS_EXCLUDED(mu_);
  // When the last message from the control plane arrived; InfinitePast before the first.
  absl::Time last_heard() const ABSL_LOCKS_EXCLUDED(mu_);
  // Decisions waiting to be sent or acknowledged.
  size_t unacknowledged_decisions() const ABSL_LOCKS_EXCLUDED(mu_);
  Stats stats() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  using Stream = grpc::ClientReaderWriter<v1::SyncRequest, v1::SyncResponse>;

  void Run();
  // One stream, from connect to its end; returns its final status.
  grpc::Status RunStream(Backoff& backoff);
  void Handle(const v1::SyncResponse& response) ABSL_LOCKS_EXCLUDED(mu_);
  // Sends acks and decisions on `stream` until the stream (generation) ends.
  void WriteLoop(Stream* stream, int64_t generation) ABSL_LOCKS_EXCLUDED(mu_);
  // The next message the writer sends, if any.
  std::optional<v1::SyncRequest> NextWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Puts unacknowledged decisions back in the outbox (unless newer ones replaced them).
  void RequeueInFlightLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const SyncClientOptions options_;
  SettingsCache* const cache_;
  std::unique_ptr<v1::ControlPlane::Stub> stub_;
  std::thread thread_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time last_heard_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  int64_t generation_ ABSL_GUARDED_BY(mu_) = 0;  // of the current stream
  bool stream_up_ ABSL_GUARDED_BY(mu_) = false;  // the hello was written
  bool stream_over_ ABSL_GUARDED_BY(mu_) = false;  // the writer must stop
  std::optional<int64_t> ack_ ABSL_GUARDED_BY(mu_);  // the latest ack to send
  // Snapshot chunks received, to acknowledge: the control plane sends a few ahead only.
  std::optional<int> chunk_ack_ ABSL_GUARDED_BY(mu_);
  int snapshot_chunks_ = 0;  // reader thread only: chunks of the snapshot in progress
  // Decisions to send, latest per chainlet, and the ones sent and not yet acknowledged.
  absl::flat_hash_map<std::string, v1::ScalingDecision> outbox_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, v1::ScalingDecision> in_flight_ ABSL_GUARDED_BY(mu_);
  std::optional<uint64_t> in_flight_sequence_ ABSL_GUARDED_BY(mu_);
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<v1::SyncChange> parts_;  // reader thread only: parts of a change so far
  std::vector<v1::ChainletState> snapshot_;  // reader thread only: chunks so far
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace chainscale

#endif  // CHAINSCALE_AGENT_SYNC_CLIENT_H_
