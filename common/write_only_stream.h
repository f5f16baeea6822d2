// WriteOnlyStream: the shape every server-streaming reactor of chainscale shares (the
// control plane's decision feed, the agent's decision watch, KEDA's StreamIsActive): one
// write in flight and no Finish before it completes (WriteGate), ended from any thread
// with End, CANCELLED when the client goes away, UNAVAILABLE when a write fails.
//
// A subclass says what to write next (WriteNextLocked: called with mu_ held after each
// write completes; it starts a write when one is due and the gate allows it), may note
// how the stream ends (OnEndingLocked), and frees itself in OnDone.
#ifndef CHAINSCALE_COMMON_WRITE_ONLY_STREAM_H_
#define CHAINSCALE_COMMON_WRITE_ONLY_STREAM_H_

#include <grpcpp/grpcpp.h>

#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/stream_set.h"
#include "common/write_gate.h"

namespace chainscale {

template <typename Message>
class WriteOnlyStream : public grpc::ServerWriteReactor<Message>, public EndableStream {
 public:
  void OnWriteDone(bool ok) final {
    absl::MutexLock lock(&mu_);
    if (std::optional<grpc::Status> end = gate_.Completed()) {
      this->Finish(*end);
      return;
    }
    if (!ok) {
      EndLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write to client failed"));
      return;
    }
    WriteNextLocked();
  }

  void OnCancel() final { End(grpc::Status::CANCELLED); }

  void End(const grpc::Status& status) final {
    absl::MutexLock lock(&mu_);
    EndLocked(status);
  }

 protected:
  explicit WriteOnlyStream(grpc::CallbackServerContext* context) : context_(context) {}

  // Starts the next write, if one is due and gate_.CanWrite().
  virtual void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;
  // Once, when the stream starts to end, with the status it ends with.
  virtual void OnEndingLocked(const grpc::Status& /*status*/)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {}

  void EndLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!gate_.ending()) OnEndingLocked(status);
    EndStream(context_, gate_, *this, status);
  }

  grpc::CallbackServerContext* const context_;
  absl::Mutex mu_;
  WriteGate gate_ ABSL_GUARDED_BY(mu_);
};

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_WRITE_ONLY_STREAM_H_
