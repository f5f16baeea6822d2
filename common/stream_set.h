// StreamSet: the live long-lived streams of a server (callback reactors), so that
// shutdown can end them all with UNAVAILABLE instead of waiting for them.
#ifndef CHAINSCALE_COMMON_STREAM_SET_H_
#define CHAINSCALE_COMMON_STREAM_SET_H_

#include <grpcpp/support/status.h>

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"

namespace chainscale {

// A stream that can be ended from outside its reactions.
class EndableStream {
 public:
  virtual ~EndableStream() = default;
  // Ends the stream with `status` (after any write in flight). Must not block.
  virtual void End(const grpc::Status& status) = 0;
};

class StreamSet {
 public:
  // False once EndAll ran: the stream must end at once.
  bool Add(EndableStream* stream) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    streams_.insert(stream);
    return !closed_;
  }
  // Call from the stream's OnDone, before it is deleted.
  void Remove(EndableStream* stream) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    streams_.erase(stream);
  }
  // Ends every live stream with UNAVAILABLE; later ones are refused by Add.
  void EndAll() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    // Streams cannot be deleted meanwhile: OnDone removes them under this lock first.
    for (EndableStream* stream : streams_) {
      stream->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
    }
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_set<EndableStream*> streams_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_STREAM_SET_H_
