// ReplicaScheduler on a fake clock: the concurrency limit and the FIFO queue, refusals at
// once beyond the queue, service times from the model and the time scale, a queued
// request starting when its slot frees (not when Advance runs), tokens and counters,
// draining, aborting, and callbacks that run outside the lock.
#include "tools/replica/scheduler.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"

namespace chainscale {
namespace {

using ::testing::ElementsAre;
using testing::FakeClock;

// Every request takes exactly one second, whatever its tokens.
SchedulerOptions OneSecondEach(int max_concurrency, int max_queue) {
  SchedulerOptions options;
  options.max_concurrency = max_concurrency;
  options.max_queue = max_queue;
  options.model.overhead = absl::Seconds(1);
  options.model.per_context_token = absl::ZeroDuration();
  options.model.per_generated_token = absl::ZeroDuration();
  return options;
}

// Records outcomes as "<name>:<outcome>" in the order the callbacks run.
class Outcomes {
 public:
  ReplicaScheduler::Done For(std::string name) {
    return [this, name](RequestOutcome outcome) {
      seen_.push_back(name + ":" + RequestOutcomeName(outcome));
    };
  }
  std::vector<std::string> Take() { return std::exchange(seen_, {}); }

 private:
  std::vector<std::string> seen_;
};

TEST(ReplicaSchedulerTest, RunsUpToTheLimitQueuesInOrderAndRefusesBeyondTheQueue) {
  FakeClock clock;
  ReplicaScheduler scheduler(OneSecondEach(2, 3), clock);
  Outcomes outcomes;
  for (const char* name : {"a", "b", "c", "d", "e"}) {
    scheduler.Submit({10, 5}, outcomes.For(name));
  }
  EXPECT_EQ(scheduler.Load().running, 2);
  EXPECT_EQ(scheduler.Load().waiting, 3);
  // The queue is full: refused before Submit returns.
  EXPECT_EQ(scheduler.Submit({10, 5}, outcomes.For("f")), SubmitResult::kRefused);
  EXPECT_THAT(outcomes.Take(), ElementsAre("f:queue_full"));

  clock.Advance(absl::Milliseconds(999));
  scheduler.Advance();
  EXPECT_THAT(outcomes.Take(), ElementsAre());
  clock.Advance(absl::Milliseconds(1));
  scheduler.Advance();
  EXPECT_THAT(outcomes.Take(), ElementsAre("a:completed", "b:completed"));
  EXPECT_EQ(scheduler.Load().running, 2);
  EXPECT_EQ(scheduler.Load().waiting, 1);
  // Room in the queue again.
  EXPECT_EQ(scheduler.Submit({10, 5}, outcomes.For("g")), SubmitResult::kQueued);
  clock.Advance(absl::Seconds(1));
  scheduler.Advance();
  EXPECT_THAT(outcomes.Take(), ElementsAre("c:completed", "d:completed"));
  clock.Advance(absl::Seconds(1));
  scheduler.Advance();
  EXPECT_THAT(outcomes.Take(), ElementsAre("e:completed", "g:completed"));
  const ReplicaLoad load = scheduler.Load();
  EXPECT_EQ(load.running, 0);
  EXPECT_EQ(load.waiting, 0);
  EXPECT_EQ(load.completed, 6);
  EXPECT_EQ(load.queue_full, 1);
  EXPECT_EQ(scheduler.NextCompletion(), absl::InfiniteFuture());
}

TEST(ReplicaSchedulerTest, ServiceTimeComesFromTheModelAndTheTimeScale) {
  FakeClock clock;
  SchedulerOptions options;
  options.model.overhead = absl::Milliseconds(50);
  options.model.per_context_token = absl::Microseconds(200);
  options.model.per_generated_token = absl::Milliseconds(20);
  options.time_scale = 2;
  ReplicaScheduler scheduler(options, clock);
  Outcomes outcomes;
  const absl::Time start = clock.Now();
  // 50 ms + 100 × 0.2 ms + 10 × 20 ms = 270 ms, twice as fast: 135 ms.
  EXPECT_EQ(scheduler.Submit({100, 10}, outcomes.For("a")), SubmitResult::kRunning);
  EXPECT_EQ(scheduler.NextCompletion(), start + absl::Milliseconds(135));
  clock.Advance(absl::Milliseconds(134));
  scheduler.Advance();
  EXPECT_THAT(outcomes.Take(), ElementsAre());
  clock.Advance(absl::Milliseconds(1));
  scheduler.Advance();
  EXPECT_THAT(outcomes.Take(), ElementsAre("a:completed"));
}

TEST(ReplicaSchedulerTest, AQueuedRequestStartsWhenItsSlotFreesNotWhenAdvanceRuns) {
  FakeClock clock;
  ReplicaScheduler scheduler(OneSecondEach(1, 10), clock);
  Outcomes outcomes;
  const absl::Time start = clock.Now();
  scheduler.Submit({1, 1}, outcomes.For("a"));
  scheduler.Submit({1, 1}, outcomes.For("b"));
  scheduler.Submit({1, 1}, outcomes.For("c"));
  // Advance runs late: a finished at 1 s, so b runs from 1 s to 2 s.
  clock.Advance(absl::Milliseconds(1500));
  scheduler.Advance();
  EXPECT_THAT(outcomes.Take(), ElementsAre("a:completed"));
  EXPECT_EQ(scheduler.NextCompletion(), start + absl::Seconds(2));
  // Later still: b and c (1 s each, back to back) both finish in one call.
  clock.Advance(absl::Seconds(2));
  scheduler.Advance();
  EXPECT_THAT(outcomes.Take(), ElementsAre("b:completed", "c:completed"));
  // A request that arrives after its slot freed starts when it arrives.
  scheduler.Submit({1, 1}, outcomes.For("d"));
  EXPECT_EQ(scheduler.NextCompletion(), clock.Now() + absl::Seconds(1));
}

TEST(ReplicaSchedulerTest, TokensInFlightAndTokenCounters) {
  FakeClock clock;
  ReplicaScheduler scheduler(OneSecondEach(1, 5), clock);
  Outcomes outcomes;
  scheduler.Submit({100, 20}, outcomes.For("a"));
  scheduler.Submit({7, 3}, outcomes.For("b"));
  ReplicaLoad load = scheduler.Load();
  // Context and generated tokens of every request in flight, running or waiting.
  EXPECT_EQ(load.tokens_in_flight, 130);
  EXPECT_EQ(load.prompt_tokens_total, 0);
  EXPECT_EQ(load.generation_tokens_total, 0);
  clock.Advance(absl::Seconds(1));
  scheduler.Advance();
  load = scheduler.Load();
  EXPECT_EQ(load.tokens_in_flight, 10);
  EXPECT_EQ(load.prompt_tokens_total, 100);
  EXPECT_EQ(load.generation_tokens_total, 20);
  clock.Advance(absl::Seconds(1));
  scheduler.Advance();
  load = scheduler.Load();
  EXPECT_EQ(load.tokens_in_flight, 0);
  EXPECT_EQ(load.prompt_tokens_total, 107);
  EXPECT_EQ(load.generation_tokens_total, 23);
  EXPECT_EQ(load.completed, 2);
}

TEST(ReplicaSchedulerTest, DrainRefusesNewRequestsAndFinishesTheRest) {
  FakeClock clock;
  ReplicaScheduler scheduler(OneSecondEach(1, 5), clock);
  Outcomes outcomes;
  scheduler.Submit({1, 1}, outcomes.For("a"));
  scheduler.Submit({1, 1}, outcomes.For("b"));
  scheduler.Drain();
  EXPECT_EQ(scheduler.Submit({1, 1}, outcomes.For("c")), SubmitResult::kRefused);
  EXPECT_THAT(outcomes.Take(), ElementsAre("c:draining"));
  EXPECT_FALSE(scheduler.Idle());
  clock.Advance(absl::Seconds(2));
  scheduler.Advance();
  EXPECT_THAT(outcomes.Take(), ElementsAre("a:completed", "b:completed"));
  EXPECT_TRUE(scheduler.Idle());
  EXPECT_EQ(scheduler.Load().draining, 1);
}

TEST(ReplicaSchedulerTest, AbortAllEndsEveryRequestRunningOrWaiting) {
  FakeClock clock;
  ReplicaScheduler scheduler(OneSecondEach(1, 5), clock);
  Outcomes outcomes;
  scheduler.Submit({1, 1}, outcomes.For("a"));
  scheduler.Submit({1, 1}, outcomes.For("b"));
  scheduler.AbortAll();
  EXPECT_THAT(outcomes.Take(), ElementsAre("a:aborted", "b:aborted"));
  const ReplicaLoad load = scheduler.Load();
  EXPECT_EQ(load.running, 0);
  EXPECT_EQ(load.waiting, 0);
  EXPECT_EQ(load.tokens_in_flight, 0);
  EXPECT_EQ(load.aborted, 2);
  EXPECT_EQ(load.prompt_tokens_total, 0) << "an aborted request processed nothing";
  EXPECT_TRUE(scheduler.Idle());
}

// Callbacks run after the scheduler's lock is released: one may call the scheduler
// again (an HTTP answer that reads the load, a retry) without deadlocking.
TEST(ReplicaSchedulerTest, CallbacksRunOutsideTheLock) {
  FakeClock clock;
  ReplicaScheduler scheduler(OneSecondEach(1, 0), clock);
  std::vector<int> running_seen;
  scheduler.Submit({1, 1}, [&](RequestOutcome) { running_seen.push_back(scheduler.Load().running); });
  scheduler.Submit({1, 1}, [&](RequestOutcome) { running_seen.push_back(scheduler.Load().running); });
  clock.Advance(absl::Seconds(1));
  scheduler.Advance();
  // The refusal (max_queue 0) saw a running; the completion saw none left.
  EXPECT_THAT(running_seen, ElementsAre(1, 0));
}

}  // namespace
}  // namespace chainscale
