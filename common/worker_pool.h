// A fixed set of threads that run queued work in arrival order. gRPC's callback handlers
// must not block the threads that poll for calls; management calls that wait (a commit's
// fsync, the agents' acks) run here and finish their reactor from here.
#ifndef CHAINSCALE_COMMON_WORKER_POOL_H_
#define CHAINSCALE_COMMON_WORKER_POOL_H_

#include <deque>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace chainscale {

class WorkerPool {
 public:
  explicit WorkerPool(int threads);
  // Runs everything already queued, then joins the threads.
  ~WorkerPool();

  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void Schedule(absl::AnyInvocable<void() &&> work) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Run() ABSL_LOCKS_EXCLUDED(mu_);
  bool Ready() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::deque<absl::AnyInvocable<void() &&>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_WORKER_POOL_H_
