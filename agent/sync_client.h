// SyncClient: the agent's end of the Sync stream. On its own thread it connects to the
// control plane, says hello with the cache's applied revision and cluster id, applies the
// snapshots and changes it receives to the SettingsCache, acks each applied revision,
// sends the decisions it is given, and reconnects with jittered exponential backoff when
// the stream ends.
#ifndef CHAINSCALE_AGENT_SYNC_CLIENT_H_
#define CHAINSCALE_AGENT_SYNC_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
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
};

class SyncClient {
 public:
  struct Stats {
    int64_t streams = 0;    // streams opened
    int64_t snapshots = 0;  // complete snapshots applied
    int64_t changes = 0;    // changes applied
    int64_t rejected = 0;   // changes refused for going backwards
    int last_end_code = -1;  // grpc::StatusCode the last stream ended with; -1: none yet
  };

  // `cache` must outlive the client.
  SyncClient(SyncClientOptions options, SettingsCache* cache);
  ~SyncClient();  // stops

  void Start();
  // Ends the stream and the thread; idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);
  // Cancels the current stream (as a network cut would); the client reconnects.
  void DropStream() ABSL_LOCKS_EXCLUDED(mu_);

  // Sends decisions now if connected; otherwise keeps the latest per chainlet and sends
  // them after the next hello.
  void SendDecisions(const std::vector<v1::ScalingDecision>& decisions)
      ABSL_LOCKS_EXCLUDED(mu_);

  bool connected() const ABSL_LOCKS_EXCLUDED(mu_);
  Stats stats() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  using Stream = grpc::ClientReaderWriter<v1::SyncRequest, v1::SyncResponse>;

  void Run();
  // One stream, from connect to its end; returns its final status.
  grpc::Status RunStream(Backoff& backoff);
  void Handle(const v1::SyncResponse& response, std::vector<v1::ChainletState>* snapshot);
  void Ack(int64_t revision) ABSL_LOCKS_EXCLUDED(mu_);
  // Writes one message; false when there is no stream or it broke.
  bool Write(const v1::SyncRequest& request) ABSL_LOCKS_EXCLUDED(mu_, write_mu_);
  void FlushDecisions() ABSL_LOCKS_EXCLUDED(mu_, write_mu_);

  const SyncClientOptions options_;
  SettingsCache* const cache_;
  std::unique_ptr<v1::ControlPlane::Stub> stub_;
  std::thread thread_;

  // Held for a whole write (writes may block on flow control), so that one message is
  // written at a time and the stream is not destroyed under a writer. Taken before mu_.
  absl::Mutex write_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  Stream* stream_ ABSL_GUARDED_BY(mu_) = nullptr;  // set once the hello is written
  absl::flat_hash_map<std::string, v1::ScalingDecision> unsent_ ABSL_GUARDED_BY(mu_);
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace chainscale

#endif  // CHAINSCALE_AGENT_SYNC_CLIENT_H_
