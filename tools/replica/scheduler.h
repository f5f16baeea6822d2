// ReplicaScheduler: the serving core of chainscale-replica. At most `max_concurrency`
// requests run at once, each for the service time tools/simulator/trace.h's model gives
// its tokens; the rest wait in arrival order, at most `max_queue` of them; beyond that a
// request is refused at once. Time comes from an injected clock and nothing here waits:
// the caller calls Advance when NextCompletion comes (the server from a timer thread,
// tests after moving a fake clock).
#ifndef CHAINSCALE_TOOLS_REPLICA_SCHEDULER_H_
#define CHAINSCALE_TOOLS_REPLICA_SCHEDULER_H_

#include <cstdint>
#include <deque>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "tools/simulator/trace.h"

namespace chainscale {

struct SchedulerOptions {
  int max_concurrency = 8;  // requests running at once, >= 1
  int max_queue = 64;       // requests waiting beyond those, >= 0
  ServiceTimeModel model;
  // Run this many times faster than the model: service times are the model's divided
  // by it (the load generator's --time_scale means the same). > 0.
  double time_scale = 1.0;
};

// The tokens of one request: what sets its service time.
struct RequestTokens {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

enum class RequestOutcome {
  kCompleted,  // ran for its service time
  kQueueFull,  // refused at once: max_concurrency running and max_queue waiting
  kDraining,   // refused at once: the replica is shutting down
  kAborted,    // ended unfinished by AbortAll (the drain timeout passed)
};

// "completed", "queue_full", "draining", "aborted" (metric labels, logs).
const char* RequestOutcomeName(RequestOutcome outcome);

enum class SubmitResult { kRunning, kQueued, kRefused };

// The load now, and counts since the scheduler was made.
struct ReplicaLoad {
  int running = 0;
  int waiting = 0;
  // Prompt and completion tokens of every request running or waiting (as trace.h counts
  // tokens in flight).
  int64_t tokens_in_flight = 0;
  int64_t completed = 0;
  int64_t prompt_tokens_total = 0;      // of completed requests
  int64_t generation_tokens_total = 0;  // of completed requests
  int64_t queue_full = 0;
  int64_t draining = 0;
  int64_t aborted = 0;
};

class ReplicaScheduler {
 public:
  // Called once per request with what became of it, after the scheduler's lock is
  // released (it may call the scheduler); it must not block.
  using Done = absl::AnyInvocable<void(RequestOutcome)>;

  // `options` must be valid (the server checks them).
  ReplicaScheduler(SchedulerOptions options, const Clock& clock);

  // Runs the request now when fewer than max_concurrency run, queues it when fewer than
  // max_queue wait, refuses it otherwise (and always after Drain): a refusal calls `done`
  // before Submit returns; the others call it from Advance or AbortAll.
  SubmitResult Submit(RequestTokens tokens, Done done) ABSL_LOCKS_EXCLUDED(mu_);

  // Completes every running request whose service time has ended by the clock's now, in
  // the order they end, each freed slot going to the oldest waiting request. A request
  // that waited starts when its slot freed (or when it arrived, if later), not when
  // Advance runs, so a late call shifts nothing.
  void Advance() ABSL_LOCKS_EXCLUDED(mu_);

  // When the next running request ends; InfiniteFuture when none runs.
  absl::Time NextCompletion() const ABSL_LOCKS_EXCLUDED(mu_);

  // Refuses every later request (kDraining); those running and waiting go on.
  void Drain() ABSL_LOCKS_EXCLUDED(mu_);
  // Ends every request running or waiting now with kAborted.
  void AbortAll() ABSL_LOCKS_EXCLUDED(mu_);
  // Nothing running or waiting.
  bool Idle() const ABSL_LOCKS_EXCLUDED(mu_);

  ReplicaLoad Load() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Request {
    RequestTokens tokens;
    Done done;
    absl::Time arrived;
    absl::Time ends;  // set when it starts running
    uint64_t sequence = 0;
  };
  // Orders a heap of running requests by end, then arrival, soonest on top.
  struct EndsLater {
    bool operator()(const Request& a, const Request& b) const {
      return a.ends != b.ends ? a.ends > b.ends : a.sequence > b.sequence;
    }
  };
  using Finished = std::vector<std::pair<Done, RequestOutcome>>;

  void StartLocked(Request request, absl::Time at) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void Run(Finished& finished);

  const SchedulerOptions options_;
  const Clock& clock_;

  mutable absl::Mutex mu_;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  // A heap (EndsLater): std::priority_queue cannot move its move-only top out.
  std::vector<Request> running_ ABSL_GUARDED_BY(mu_);
  std::deque<Request> waiting_ ABSL_GUARDED_BY(mu_);
  ReplicaLoad load_ ABSL_GUARDED_BY(mu_);
};

}  // namespace chainscale

#endif  // CHAINSCALE_TOOLS_REPLICA_SCHEDULER_H_
