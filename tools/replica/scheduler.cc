#include "tools/replica/scheduler.h"

#include <algorithm>

namespace chainscale {

const char* RequestOutcomeName(RequestOutcome outcome) {
  switch (outcome) {
    case RequestOutcome::kCompleted:
      return "completed";
    case RequestOutcome::kQueueFull:
      return "queue_full";
    case RequestOutcome::kDraining:
      return "draining";
    case RequestOutcome::kAborted:
      return "aborted";
  }
  return "unknown";
}

ReplicaScheduler::ReplicaScheduler(SchedulerOptions options, const Clock& clock)
    : options_(std::move(options)), clock_(clock) {}

SubmitResult ReplicaScheduler::Submit(RequestTokens tokens, Done done) {
  RequestOutcome refusal;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_.Now();
    Request request{tokens, std::move(done), now, absl::InfiniteFuture(), next_sequence_++};
    if (draining_) {
      refusal = RequestOutcome::kDraining;
      ++load_.draining;
    } else if (load_.running < options_.max_concurrency) {
      load_.tokens_in_flight += tokens.prompt_tokens + tokens.completion_tokens;
      StartLocked(std::move(request), now);
      return SubmitResult::kRunning;
    } else if (load_.waiting < options_.max_queue) {
      load_.tokens_in_flight += tokens.prompt_tokens + tokens.completion_tokens;
      ++load_.waiting;
      waiting_.push_back(std::move(request));
      return SubmitResult::kQueued;
    } else {
      refusal = RequestOutcome::kQueueFull;
      ++load_.queue_full;
    }
    done = std::move(request.done);
  }
  done(refusal);
  return SubmitResult::kRefused;
}

void ReplicaScheduler::StartLocked(Request request, absl::Time at) {
  const TraceRequest trace{at, request.tokens.prompt_tokens, request.tokens.completion_tokens};
  request.ends = at + options_.model.ServiceTime(trace) / options_.time_scale;
  running_.push_back(std::move(request));
  std::push_heap(running_.begin(), running_.end(), EndsLater());
  ++load_.running;
}

void ReplicaScheduler::Advance() {
  Finished finished;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_.Now();
    while (!running_.empty() && running_.front().ends <= now) {
      std::pop_heap(running_.begin(), running_.end(), EndsLater());
      Request done = std::move(running_.back());
      running_.pop_back();
      --load_.running;
      const RequestTokens& t = done.tokens;
      load_.tokens_in_flight -= t.prompt_tokens + t.completion_tokens;
      load_.prompt_tokens_total += t.prompt_tokens;
      load_.generation_tokens_total += t.completion_tokens;
      ++load_.completed;
      finished.emplace_back(std::move(done.done), RequestOutcome::kCompleted);
      if (!waiting_.empty()) {
        Request next = std::move(waiting_.front());
        waiting_.pop_front();
        --load_.waiting;
        const absl::Time start = std::max(done.ends, next.arrived);
        StartLocked(std::move(next), start);
      }
    }
  }
  Run(finished);
}

absl::Time ReplicaScheduler::NextCompletion() const {
  absl::MutexLock lock(&mu_);
  return running_.empty() ? absl::InfiniteFuture() : running_.front().ends;
}

void ReplicaScheduler::Drain() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
}

void ReplicaScheduler::AbortAll() {
  Finished finished;
  {
    absl::MutexLock lock(&mu_);
    // Running ones first, in the order they would have ended, then the queue in order.
    std::sort_heap(running_.begin(), running_.end(), EndsLater());
    std::reverse(running_.begin(), running_.end());
    for (Request& r : running_) finished.emplace_back(std::move(r.done), RequestOutcome::kAborted);
    for (Request& r : waiting_) finished.emplace_back(std::move(r.done), RequestOutcome::kAborted);
    load_.aborted += static_cast<int64_t>(finished.size());
    running_.clear();
    waiting_.clear();
    load_.running = 0;
    load_.waiting = 0;
    load_.tokens_in_flight = 0;
  }
  Run(finished);
}

bool ReplicaScheduler::Idle() const {
  absl::MutexLock lock(&mu_);
  return running_.empty() && waiting_.empty();
}

ReplicaLoad ReplicaScheduler::Load() const {
  absl::MutexLock lock(&mu_);
  return load_;
}

void ReplicaScheduler::Run(Finished& finished) {
  for (auto& [done, outcome] : finished) done(outcome);
}

}  // namespace chainscale
