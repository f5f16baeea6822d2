// SyncStream: one agent's Sync stream on the gRPC callback API. It authenticates the
// agent's token, subscribes the agent to the SyncHub on its hello, writes what the hub
// says comes next (one write in flight, the next started from OnWriteDone), passes acks
// to the hub and stores the decisions the agent sends back.
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
#include "control_plane/store.h"
#include "control_plane/sync_hub.h"

namespace chainscale {

// Where a stream's work goes; null members mean the control plane is not ready.
struct SyncBackends {
  SyncHub* hub = nullptr;
  Store* store = nullptr;
};

class SyncStream final : public grpc::ServerBidiReactor<v1::SyncRequest, v1::SyncResponse>,
                         public EndableStream {
 public:
  // Starts the stream: finishes it at once when the token is wrong, the control plane is
  // not ready or shutting down; otherwise waits for the agent's hello. Deletes itself
  // when done.
  SyncStream(grpc::CallbackServerContext* context, const ApiKeys& agent_tokens,
             bool open_access, SyncBackends backends, StreamSet* streams);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

  // Ends the stream with `status` once any write in flight completes.
  void End(const grpc::Status& status) override ABSL_LOCKS_EXCLUDED(mu_);
  // Sends what the hub has next, unless a write is in flight.
  void MaybeWrite() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  class Waker;

  void Handle(const v1::SyncRequest& request);
  void MaybeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EndLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const SyncBackends backends_;
  StreamSet* const streams_;
  std::shared_ptr<Waker> waker_;
  v1::SyncRequest in_;

  absl::Mutex mu_;
  v1::SyncResponse out_ ABSL_GUARDED_BY(mu_);
  WriteGate gate_ ABSL_GUARDED_BY(mu_);
  std::optional<SyncHub::SubscriptionId> subscription_ ABSL_GUARDED_BY(mu_);
  std::string agent_id_ ABSL_GUARDED_BY(mu_);
};

}  // namespace chainscale

#endif  // CHAINSCALE_CONTROL_PLANE_SYNC_STREAM_H_
