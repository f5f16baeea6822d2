// WriteGate: the bookkeeping every callback-API stream of chainscale needs: at most one
// write in flight, and no Finish until that write has completed. Not thread-safe on its
// own: reactors guard it with their mutex.
#ifndef CHAINSCALE_COMMON_WRITE_GATE_H_
#define CHAINSCALE_COMMON_WRITE_GATE_H_

#include <grpc/grpc.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include <optional>
#include <utility>

namespace chainscale {

class WriteGate {
 public:
  // True when a write may start now.
  bool CanWrite() const { return !writing_ && !ending(); }
  void Started() { writing_ = true; }

  // The write completed. Returns the status to Finish with now, when an end was waiting
  // for the write.
  std::optional<grpc::Status> Completed() {
    writing_ = false;
    if (!pending_end_.has_value()) return std::nullopt;
    finished_ = true;
    return std::exchange(pending_end_, std::nullopt);
  }

  // Asks to end the stream with `status`. Returns it when Finish may be called now;
  // otherwise it waits for the write in flight (Completed returns it). Later asks, once
  // an end is under way, are dropped.
  std::optional<grpc::Status> End(const grpc::Status& status) {
    if (ending()) return std::nullopt;
    if (writing_) {
      pending_end_ = status;
      return std::nullopt;
    }
    finished_ = true;
    return status;
  }

  bool writing() const { return writing_; }
  // Finished, or about to be once the write in flight completes.
  bool ending() const { return finished_ || pending_end_.has_value(); }

 private:
  bool writing_ = false;
  bool finished_ = false;
  std::optional<grpc::Status> pending_end_;
};

// Ends a callback-API stream with `status`. Messages already written wait in the
// transport until the client makes room for them; one that stopped reading never does,
// and a status sent with Finish would queue behind them forever (so would a write in
// flight). An error is sent
// at once by cancelling the call with it (gRPC sends the trailers ahead of the queued
// messages, which are dropped); OK follows the messages.
template <typename Reactor>
void EndStream(grpc::CallbackServerContext* context, WriteGate& gate, Reactor& reactor,
               const grpc::Status& status) {
  if (!status.ok() && !gate.ending()) {
    grpc_call_cancel_with_status(context->c_call(),
                                 static_cast<grpc_status_code>(status.error_code()),
                                 status.error_message().c_str(), nullptr);
  }
  if (std::optional<grpc::Status> end = gate.End(status)) reactor.Finish(*end);
}

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_WRITE_GATE_H_
