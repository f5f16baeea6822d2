// SyncStream: one agent's Sync stream on the gRPC callback API. It authenticates the
// agent's token, subscribes the agent to the SyncHub on its hello, writes what the hub
// sends (one write in flight), passes acks and decisions to the hub, and refuses messages
// over the Sync size limit. It never reads the store or waits inside a reaction.
#ifndef CHAINSCALE_CONTROL_PLANE_SYNC_STREAM_H_
#define CHAINSCALE_CONTROL_PLANE_SYNC_STREAM_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>

#include "absl/synchronization/mutex.h"
#include "chainscale/v1/control_plane.grpc.pb.h"
#include "common/auth.h"
#include "common/stream_set.h"
#include "common/write_gate.h"
#include "control_plane/sync_hub.h"

namespace chainscale {

// Who may open a Sync stream.
struct SyncAccess {
  const ApiKeys* agent_tokens = nullptr;
  // True only for a process started with --insecure and no keys or tokens at all.
  bool open = false;
};

class SyncStream final : public grpc::ServerBidiReactor<v1::SyncRequest, v1::SyncResponse>,
                         public EndableStream {
 public:
  // Starts the stream: finishes it at once when the token is wrong, the control plane is
  // not ready (null hub) or shutting down; otherwise waits for the agent's hello. Deletes
  // itself when done.
  SyncStream(grpc::CallbackServerContext* context, SyncAccess access, SyncHub* hub,
             StreamSet* streams);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

  // Ends the stream with `status` once any write in flight completes.
  void End(const grpc::Status& status) override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  class Sink;

  // Handles one message; false when the stream is not to read on now.
  bool Handle(const v1::SyncRequest& request) ABSL_LOCKS_EXCLUDED(mu_);
  void Write(v1::SyncResponse message) ABSL_LOCKS_EXCLUDED(mu_);
  void ReadNext() ABSL_LOCKS_EXCLUDED(mu_);
  void EndLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  SyncHub* const hub_;
  StreamSet* const streams_;
  std::shared_ptr<Sink> sink_;
  v1::SyncRequest in_;

  absl::Mutex mu_;
  v1::SyncResponse out_ ABSL_GUARDED_BY(mu_);
  WriteGate gate_ ABSL_GUARDED_BY(mu_);
  std::optional<SyncHub::SubscriptionId> subscription_ ABSL_GUARDED_BY(mu_);
};

}  // namespace chainscale

#endif  // CHAINSCALE_CONTROL_PLANE_SYNC_STREAM_H_
