// The decision feed on a real store: the initial state read a page at a time, live
// decisions in order, resuming within the ring and beyond it, a slow watcher keeping only
// the latest decision per chainlet, and a watcher past its bound given up on.
#include "control_plane/decision_feed.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace chainscale {
namespace {

v1::ScalingDecision Decision(const std::string& chainlet, int32_t replicas,
                             const std::string& chain = "chain-a") {
  v1::ScalingDecision d;
  d.set_chain_id(chain);
  d.set_env_name("production");
  d.set_chainlet_name(chainlet);
  d.set_desired_replicas(replicas);
  return d;
}

std::string Name(int i) { return absl::StrCat("c", 100 + i); }  // sorts as it counts

// A watcher that records what the feed gives it, as a stream would send it.
class RecordingSink : public FeedSink {
 public:
  void Begin(const FeedStart& start, const FeedBatch& missed) override {
    absl::MutexLock lock(&mu_);
    start_ = start;
    missed_ = missed;
  }
  void Offer(const FeedBatch& batch) override {
    absl::MutexLock lock(&mu_);
    offered_.insert(offered_.end(), batch.begin(), batch.end());
  }
  FeedStart start() {
    absl::MutexLock lock(&mu_);
    return start_;
  }
  FeedBatch missed() {
    absl::MutexLock lock(&mu_);
    return missed_;
  }
  FeedBatch offered() {
    absl::MutexLock lock(&mu_);
    return offered_;
  }

 private:
  absl::Mutex mu_;
  FeedStart start_ ABSL_GUARDED_BY(mu_);
  FeedBatch missed_ ABSL_GUARDED_BY(mu_);
  FeedBatch offered_ ABSL_GUARDED_BY(mu_);
};

class DecisionFeedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions options;
    options.path = dir_.str();
    options.sync_writes = false;
    absl::StatusOr<std::unique_ptr<Store>> store = chainscale::Store::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    // chain-a with 10 chainlets in production, chain-b with one.
    StoreMutation a;
    a.change.set_revision(1);
    v1::Chain chain;
    chain.set_chain_id("chain-a");
    chain.add_environments("production");
    for (int i = 0; i < 10; ++i) {
      chain.add_chainlet_names(Name(i));
      v1::ChainletState* state = a.change.add_upserts();
      state->mutable_key()->set_chain_id("chain-a");
      state->mutable_key()->set_env_name("production");
      state->mutable_key()->set_chainlet_name(Name(i));
    }
    a.chain_puts.push_back(chain);
    StoreMutation b;
    b.change.set_revision(2);
    v1::ChainletState* state = b.change.add_upserts();
    state->mutable_key()->set_chain_id("chain-b");
    state->mutable_key()->set_env_name("production");
    state->mutable_key()->set_chainlet_name("x");
    v1::Chain chain_b;
    chain_b.set_chain_id("chain-b");
    chain_b.add_environments("production");
    chain_b.add_chainlet_names("x");
    b.chain_puts.push_back(chain_b);
    ASSERT_TRUE(store_->CommitBatch({&a, &b}).ok());
  }

  void MakeFeed(size_t ring_capacity, int page_size) {
    DecisionFeedOptions options;
    options.ring_capacity = ring_capacity;
    options.page_size = page_size;
    feed_ = std::make_unique<DecisionFeed>(store_.get(), options, [this](const FeedBatch& b) {
      absl::MutexLock lock(&observed_mu_);
      observed_ += b.size();
    });
  }

  // Stores and publishes, as the committer does.
  void Put(std::vector<v1::ScalingDecision> decisions) {
    for (const absl::Status& s : store_->PutDecisions(decisions)) ASSERT_TRUE(s.ok()) << s;
    feed_->Publish(std::move(decisions));
  }

  // Waits until the feed's thread has handed out everything published.
  void AwaitDelivered(int64_t count) {
    ASSERT_TRUE(testing::WaitFor([&] {
      absl::MutexLock lock(&observed_mu_);
      return observed_ == count;
    }));
  }

  testing::ScopedTempDir dir_;
  std::unique_ptr<chainscale::Store> store_;
  std::unique_ptr<DecisionFeed> feed_;
  absl::Mutex observed_mu_;
  int64_t observed_ ABSL_GUARDED_BY(observed_mu_) = 0;
};

// Every message a backlog has to send now.
std::vector<v1::WatchDecisionFeedResponse> Drain(FeedBacklog& backlog) {
  std::vector<v1::WatchDecisionFeedResponse> out;
  for (int i = 0; i < 1000; ++i) {
    v1::WatchDecisionFeedResponse m;
    absl::StatusOr<bool> next = backlog.Next(&m);
    EXPECT_TRUE(next.ok()) << next.status();
    if (!next.ok() || !*next) break;
    out.push_back(m);
  }
  return out;
}

TEST_F(DecisionFeedTest, InitialStateIsReadPageByPageThenMarked) {
  MakeFeed(100, /*page_size=*/3);
  std::vector<v1::ScalingDecision> stored;
  for (int i = 0; i < 10; ++i) stored.push_back(Decision(Name(i), i));
  stored.push_back(Decision("x", 7, "chain-b"));
  Put(stored);
  AwaitDelivered(11);

  int pages = 0;
  DecisionListing::PageReader reader = feed_->PageReaderFor({"chain-a", "production"});
  FeedBacklog backlog({"chain-a", "production"}, feed_->feed_id(), 100);
  backlog.StartWithInitialState(11, [&](const std::string& token) {
    ++pages;
    return reader(token);
  });
  v1::WatchDecisionFeedResponse first;
  ASSERT_TRUE(*backlog.Next(&first));
  EXPECT_EQ(pages, 1);  // one page read, not the whole table
  EXPECT_EQ(first.decision().chainlet_name(), Name(0));
  std::vector<v1::WatchDecisionFeedResponse> rest = Drain(backlog);
  ASSERT_EQ(rest.size(), 10u);  // nine more of chain-a, then the marker
  EXPECT_EQ(pages, 4);          // 3 + 3 + 3 + 1
  for (int i = 1; i < 10; ++i) {
    EXPECT_EQ(rest[i - 1].decision().chainlet_name(), Name(i));
    EXPECT_EQ(rest[i - 1].decision().desired_replicas(), i);
    EXPECT_EQ(rest[i - 1].sequence(), 11);
    EXPECT_FALSE(rest[i - 1].initial_state_done());
  }
  EXPECT_TRUE(rest.back().initial_state_done());
  EXPECT_FALSE(rest.back().has_decision());
  EXPECT_EQ(rest.back().sequence(), 11);
  EXPECT_EQ(rest.back().feed_id(), feed_->feed_id());
  EXPECT_FALSE(rest.back().resumed());
}

TEST_F(DecisionFeedTest, LiveDecisionsFollowInTheOrderStored) {
  MakeFeed(100, 256);
  RecordingSink sink;
  feed_->AddSink(&sink, "", 0);
  EXPECT_FALSE(sink.start().resumed);
  EXPECT_EQ(sink.start().sequence, 0);
  Put({Decision(Name(0), 1), Decision(Name(1), 2)});
  Put({Decision(Name(0), 3)});
  AwaitDelivered(3);
  feed_->RemoveSink(&sink);
  Put({Decision(Name(2), 4)});
  AwaitDelivered(4);
  const FeedBatch offered = sink.offered();
  ASSERT_EQ(offered.size(), 3u);  // nothing after RemoveSink
  EXPECT_EQ(offered[0]->sequence, 1);
  EXPECT_EQ(offered[1]->sequence, 2);
  EXPECT_EQ(offered[2]->sequence, 3);
  EXPECT_EQ(offered[2]->decision.desired_replicas(), 3);

  FeedBacklog backlog({}, feed_->feed_id(), 100);
  backlog.StartResumed(0, {});
  ASSERT_TRUE(backlog.Add(offered));
  std::vector<v1::WatchDecisionFeedResponse> sent = Drain(backlog);
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_TRUE(sent[0].initial_state_done());
  EXPECT_TRUE(sent[0].resumed());
  // Name(0)'s first decision was replaced by its newer one before it was sent.
  EXPECT_EQ(sent[1].decision().chainlet_name(), Name(1));
  EXPECT_EQ(sent[1].sequence(), 2);
  EXPECT_EQ(sent[2].decision().chainlet_name(), Name(0));
  EXPECT_EQ(sent[2].decision().desired_replicas(), 3);
  EXPECT_EQ(sent[2].sequence(), 3);
}

TEST_F(DecisionFeedTest, ResumesWithinTheRingAndSendsTheInitialStateBeyondIt) {
  MakeFeed(/*ring_capacity=*/4, 256);
  for (int i = 0; i < 6; ++i) Put({Decision(Name(i), i)});
  AwaitDelivered(6);  // the ring holds sequences 3 to 6

  RecordingSink within;
  feed_->AddSink(&within, feed_->feed_id(), 2);
  EXPECT_TRUE(within.start().resumed);
  EXPECT_EQ(within.start().sequence, 2);
  ASSERT_EQ(within.missed().size(), 4u);
  EXPECT_EQ(within.missed().front()->sequence, 3);
  EXPECT_EQ(within.missed().back()->sequence, 6);

  RecordingSink beyond;
  feed_->AddSink(&beyond, feed_->feed_id(), 1);  // sequence 2 is gone
  EXPECT_FALSE(beyond.start().resumed);
  EXPECT_EQ(beyond.start().sequence, 6);
  EXPECT_TRUE(beyond.missed().empty());

  RecordingSink other_feed;
  feed_->AddSink(&other_feed, "an-earlier-process", 5);
  EXPECT_FALSE(other_feed.start().resumed);

  RecordingSink ahead;
  feed_->AddSink(&ahead, feed_->feed_id(), 99);  // a position this feed never reached
  EXPECT_FALSE(ahead.start().resumed);

  // Everything after the start reaches every sink.
  Put({Decision(Name(7), 7)});
  AwaitDelivered(7);
  for (RecordingSink* sink : {&within, &beyond, &other_feed, &ahead}) {
    ASSERT_EQ(sink->offered().size(), 1u);
    EXPECT_EQ(sink->offered()[0]->sequence, 7);
    feed_->RemoveSink(sink);
  }
}

TEST_F(DecisionFeedTest, SlowWatcherKeepsTheLatestPerChainletThenIsGivenUpOnPastItsBound) {
  MakeFeed(1000, 256);
  RecordingSink sink;
  feed_->AddSink(&sink, "", 0);
  // 100 decisions for 3 chainlets while the watcher sends nothing.
  for (int i = 0; i < 100; ++i) Put({Decision(Name(i % 3), i)});
  AwaitDelivered(100);
  feed_->RemoveSink(&sink);

  FeedBacklog backlog({"chain-a", ""}, feed_->feed_id(), /*max_pending=*/3);
  backlog.StartResumed(0, {});
  ASSERT_TRUE(backlog.Add(sink.offered()));
  EXPECT_EQ(backlog.pending(), 3u);
  std::vector<v1::WatchDecisionFeedResponse> sent = Drain(backlog);
  ASSERT_EQ(sent.size(), 4u);  // the marker and the latest of each chainlet
  EXPECT_EQ(sent[1].decision().desired_replicas(), 97);
  EXPECT_EQ(sent[2].decision().desired_replicas(), 98);
  EXPECT_EQ(sent[3].decision().desired_replicas(), 99);
  EXPECT_LT(sent[1].sequence(), sent[2].sequence());
  EXPECT_LT(sent[2].sequence(), sent[3].sequence());

  // A fourth chainlet waiting is one more than the bound.
  FeedBatch batch;
  for (int i = 0; i < 4; ++i) {
    auto event = std::make_shared<FeedEvent>();
    event->sequence = 200 + i;
    event->decision = Decision(Name(i), 1);
    batch.push_back(std::move(event));
  }
  EXPECT_FALSE(backlog.Add(batch));
  EXPECT_EQ(backlog.pending(), 0u);
}

TEST_F(DecisionFeedTest, FilterNamesMustExist) {
  MakeFeed(10, 256);
  EXPECT_TRUE(feed_->CheckFilter({"", ""}).ok());
  EXPECT_TRUE(feed_->CheckFilter({"chain-a", "production"}).ok());
  EXPECT_EQ(feed_->CheckFilter({"chain-z", ""}).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(feed_->CheckFilter({"chain-a", "staging"}).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(feed_->CheckFilter({"", "production"}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(feed_->CheckFilter({"Chain A", ""}).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace chainscale
