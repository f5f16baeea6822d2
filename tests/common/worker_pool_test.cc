// The worker pool runs every scheduled task once, on its own threads, and runs what is
// still queued before its destructor returns.
#include "common/worker_pool.h"

#include <atomic>
#include <set>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace chainscale {
namespace {

TEST(WorkerPoolTest, RunsEveryTaskOnceOffTheCallersThread) {
  absl::Mutex mu;
  std::multiset<int> ran;
  std::set<std::thread::id> threads;
  {
    WorkerPool pool(4);
    for (int i = 0; i < 1000; ++i) {
      pool.Schedule([&, i] {
        absl::MutexLock lock(&mu);
        ran.insert(i);
        threads.insert(std::this_thread::get_id());
      });
    }
  }  // the destructor runs what is queued
  ASSERT_EQ(ran.size(), 1000u);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(ran.count(i), 1u) << i;
  EXPECT_EQ(threads.count(std::this_thread::get_id()), 0u);
  EXPECT_LE(threads.size(), 4u);
}

TEST(WorkerPoolTest, ABlockedTaskDoesNotHoldUpTheOthers) {
  absl::Notification release;
  absl::Notification other_ran;
  WorkerPool pool(2);
  pool.Schedule([&] { release.WaitForNotification(); });
  pool.Schedule([&] { other_ran.Notify(); });
  EXPECT_TRUE(other_ran.WaitForNotificationWithTimeout(absl::Seconds(10)));
  release.Notify();
}

TEST(WorkerPoolTest, TasksMayOwnMoveOnlyState) {
  std::atomic<int> value{0};
  {
    WorkerPool pool(1);
    auto owned = std::make_unique<int>(42);
    pool.Schedule([&value, owned = std::move(owned)] { value = *owned; });
  }
  EXPECT_EQ(value.load(), 42);
}

}  // namespace
}  // namespace chainscale
