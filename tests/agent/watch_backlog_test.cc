// A watcher's backlog: shared batches sent in order without copies, its filter, and the
// bound past which a watcher that cannot keep up is given up on.
#include "agent/watch_backlog.h"

#include <algorithm>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace chainscale {
namespace {

DecisionBatchPtr Batch(std::vector<std::pair<std::string, std::string>> chainlets,
                       int32_t replicas = 1) {
  auto batch = std::make_shared<DecisionBatch>();
  for (const auto& [chain, chainlet] : chainlets) {
    v1::ScalingDecision& d = batch->decisions.emplace_back();
    d.set_chain_id(chain);
    d.set_env_name("production");
    d.set_chainlet_name(chainlet);
    d.set_desired_replicas(replicas);
  }
  return batch;
}

TEST(WatchBacklogTest, SendsSharedBatchesInOrderWithoutCopies) {
  WatchBacklog backlog("", "");
  const DecisionBatchPtr first = Batch({{"a", "A"}, {"a", "B"}});
  const DecisionBatchPtr second = Batch({{"a", "A"}}, 2);
  ASSERT_TRUE(backlog.Add(first, 100));
  ASSERT_TRUE(backlog.Add(second, 100));
  EXPECT_EQ(backlog.waiting(), 3u);
  EXPECT_EQ(backlog.Next(), &first->decisions[0]);
  EXPECT_EQ(backlog.Next(), &first->decisions[1]);
  EXPECT_EQ(backlog.Next(), &second->decisions[0]);
  EXPECT_EQ(backlog.waiting(), 0u);
  EXPECT_EQ(backlog.Next(), nullptr);
}

TEST(WatchBacklogTest, TheDecisionBeingSentOutlivesItsBatchElsewhere) {
  WatchBacklog backlog("", "");
  DecisionBatchPtr batch = Batch({{"a", "A"}}, 7);
  ASSERT_TRUE(backlog.Add(batch, 100));
  const v1::ScalingDecision* sending = backlog.Next();
  batch.reset();  // the loop and the other watchers are done with it
  ASSERT_NE(sending, nullptr);
  EXPECT_EQ(sending->desired_replicas(), 7);
}

TEST(WatchBacklogTest, SkipsDecisionsOutsideItsFilter) {
  WatchBacklog backlog("b", "production");
  ASSERT_TRUE(backlog.Add(Batch({{"a", "A"}, {"b", "B"}, {"bb", "C"}, {"b", "D"}}), 100));
  const v1::ScalingDecision* d = backlog.Next();
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->chainlet_name(), "B");
  d = backlog.Next();
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->chainlet_name(), "D");
  EXPECT_EQ(backlog.Next(), nullptr);
}

TEST(WatchBacklogTest, RefusesToGrowPastItsBound) {
  WatchBacklog backlog("", "");
  ASSERT_TRUE(backlog.Add(Batch({{"a", "A"}, {"a", "B"}}), 3));
  ASSERT_NE(backlog.Next(), nullptr);  // one sent: one waits
  EXPECT_TRUE(backlog.Add(Batch({{"a", "A"}, {"a", "B"}}), 3));  // three wait
  EXPECT_FALSE(backlog.Add(Batch({{"a", "C"}}), 3));
  EXPECT_EQ(backlog.waiting(), 0u) << "what a watcher that cannot keep up held is released";
  EXPECT_EQ(backlog.Next(), nullptr);
}


// A listing of `n` decisions named L0, L1, ... served `page_size` at a time; counts reads.
WatchBacklog::PageReader Listing(int n, int page_size, int* reads) {
  return [=](const std::string& token) -> absl::StatusOr<v1::ListScalingDecisionsResponse> {
    ++*reads;
    const int first = token.empty() ? 0 : std::stoi(token);
    v1::ListScalingDecisionsResponse page;
    for (int i = first; i < std::min(n, first + page_size); ++i) {
      v1::ScalingDecision* d = page.add_decisions();
      d->set_chain_id("a");
      d->set_env_name("production");
      d->set_chainlet_name("L" + std::to_string(i));
    }
    if (first + page_size < n) page.set_next_page_token(std::to_string(first + page_size));
    return page;
  };
}

TEST(WatchBacklogTest, TheListingIsReadAPageAtATimeBeforeAnyBatch) {
  WatchBacklog backlog("", "");
  int reads = 0;
  backlog.StartListing(5, Listing(5, 2, &reads));
  ASSERT_TRUE(backlog.Add(Batch({{"a", "A"}}), 100));
  EXPECT_EQ(reads, 0) << "nothing is read before the stream asks";
  EXPECT_EQ(backlog.waiting(), 6u);
  std::vector<std::string> sent;
  while (const v1::ScalingDecision* d = backlog.Next()) sent.push_back(d->chainlet_name());
  EXPECT_EQ(sent, (std::vector<std::string>{"L0", "L1", "L2", "L3", "L4", "A"}));
  EXPECT_EQ(reads, 3) << "three pages of two, and no read past the last";
  EXPECT_EQ(backlog.waiting(), 0u);
}

TEST(WatchBacklogTest, AnUnreadListingCountsTowardTheBound) {
  WatchBacklog backlog("", "");
  int reads = 0;
  backlog.StartListing(3, Listing(3, 2, &reads));
  EXPECT_TRUE(backlog.Add(Batch({{"a", "A"}}), 4));
  EXPECT_FALSE(backlog.Add(Batch({{"a", "B"}}), 4)) << "three listed and two batched";
  EXPECT_EQ(backlog.waiting(), 0u);
  EXPECT_EQ(backlog.Next(), nullptr);
  EXPECT_EQ(reads, 0) << "a watcher given up on reads nothing more";
}

}  // namespace
}  // namespace chainscale
