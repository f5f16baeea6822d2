// ReportForwarder against owners on real loopback ports: a fake owner that records what
// it is sent, rejects some reports, can fall silent and can be shut down and restarted;
// and, last, a real agent's StreamLoad. Time the forwarder decides by (backoff, answer
// timeout, idleness) comes from a fake clock and the test sweeps by hand; what gRPC
// decides (connections, stream ends) is waited for with deadlines.
#include "agent/forwarder.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <deque>
#include <iostream>
#include <map>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "agent/agent_service.h"
#include "agent/server.h"
#include "common/keepalive.h"
#include "control_plane/server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace chainscale {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::WaitFor;

constexpr char kToken[] = "peer-token";
constexpr char kBadChainlet[] = "bad";

v1::LoadReport Report(int source, const std::string& chainlet, double in_flight) {
  v1::LoadReport r;
  r.set_source_id(absl::StrCat("replica-", source));
  r.set_chain_id("c");
  r.set_env_name("production");
  r.set_chainlet_name(chainlet);
  r.set_in_flight_requests(in_flight);
  return r;
}

// `n` reports from sources first..first+n-1, chainlet "A" except at `bad` indices.
std::vector<v1::LoadReport> Reports(int n, int first = 0, std::vector<int> bad = {}) {
  std::vector<v1::LoadReport> reports;
  for (int i = 0; i < n; ++i) {
    const bool is_bad = std::find(bad.begin(), bad.end(), i) != bad.end();
    reports.push_back(Report(first + i, is_bad ? kBadChainlet : "A", first + i));
  }
  return reports;
}

// Serves Agent/StreamLoad on 127.0.0.1: records every request in arrival order, answers
// each in order (NOT_FOUND for chainlet "bad") unless silent, counts streams.
class FakeOwner final : public v1::Agent::CallbackService {
 public:
  explicit FakeOwner(int port = 0) {
    grpc::ServerBuilder builder;
    ApplyServerKeepalive(builder);
    builder.AddListeningPort(absl::StrCat("127.0.0.1:", port), grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  // Stops at once, cancelling open streams, as a crashed or killed owner would.
  ~FakeOwner() override {
    server_->Shutdown(std::chrono::system_clock::now());
    server_->Wait();
  }

  int port() const { return port_; }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  void set_silent(bool silent) {
    absl::MutexLock lock(&mu_);
    silent_ = silent;
  }
  std::vector<v1::StreamLoadRequest> requests() const {
    absl::MutexLock lock(&mu_);
    return requests_;
  }
  // Every report received, in order.
  std::vector<v1::LoadReport> reports() const {
    std::vector<v1::LoadReport> all;
    for (const v1::StreamLoadRequest& r : requests()) {
      all.insert(all.end(), r.reports().begin(), r.reports().end());
    }
    return all;
  }
  int streams_opened() const {
    absl::MutexLock lock(&mu_);
    return streams_opened_;
  }
  int streams_live() const {
    absl::MutexLock lock(&mu_);
    return streams_live_;
  }
  std::vector<std::string> authorizations() const {
    absl::MutexLock lock(&mu_);
    return authorizations_;
  }

  grpc::ServerBidiReactor<v1::StreamLoadRequest, v1::StreamLoadResponse>* StreamLoad(
      grpc::CallbackServerContext* context) override {
    absl::MutexLock lock(&mu_);
    ++streams_opened_;
    ++streams_live_;
    auto it = context->client_metadata().find("authorization");
    authorizations_.push_back(it == context->client_metadata().end()
                                  ? ""
                                  : std::string(it->second.data(), it->second.size()));
    return new Stream(this);
  }

 private:
  class Stream final
      : public grpc::ServerBidiReactor<v1::StreamLoadRequest, v1::StreamLoadResponse> {
   public:
    explicit Stream(FakeOwner* owner) : owner_(owner) { StartRead(&in_); }

    void OnReadDone(bool ok) override {
      absl::MutexLock lock(&mu_);
      if (!ok) {
        read_done_ = true;
        FinishIfDoneLocked();
        return;
      }
      if (std::optional<v1::StreamLoadResponse> answer = owner_->Take(in_)) {
        queue_.push_back(*std::move(answer));
        WriteNextLocked();
      }
      StartRead(&in_);
    }
    void OnWriteDone(bool) override {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      WriteNextLocked();
      FinishIfDoneLocked();
    }
    void OnDone() override {
      owner_->StreamEnded();
      delete this;
    }

   private:
    void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      if (writing_ || read_done_ || queue_.empty()) return;
      out_ = std::move(queue_.front());
      queue_.pop_front();
      writing_ = true;
      StartWrite(&out_);
    }
    void FinishIfDoneLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      if (!read_done_ || writing_ || finished_) return;
      finished_ = true;
      Finish(grpc::Status::OK);
    }

    FakeOwner* const owner_;
    v1::StreamLoadRequest in_;
    absl::Mutex mu_;
    v1::StreamLoadResponse out_ ABSL_GUARDED_BY(mu_);
    std::deque<v1::StreamLoadResponse> queue_ ABSL_GUARDED_BY(mu_);
    bool writing_ ABSL_GUARDED_BY(mu_) = false;
    bool read_done_ ABSL_GUARDED_BY(mu_) = false;
    bool finished_ ABSL_GUARDED_BY(mu_) = false;
  };

  std::optional<v1::StreamLoadResponse> Take(const v1::StreamLoadRequest& request) {
    absl::MutexLock lock(&mu_);
    requests_.push_back(request);
    if (silent_) return std::nullopt;
    v1::StreamLoadResponse response;
    response.set_sequence(request.sequence());
    for (int i = 0; i < request.reports_size(); ++i) {
      if (request.reports(i).chainlet_name() == kBadChainlet) {
        v1::ReportRejection* r = response.add_rejections();
        r->set_index(i);
        r->set_code(static_cast<int>(grpc::StatusCode::NOT_FOUND));
        r->set_message("no chainlet bad");
      } else {
        response.set_accepted(response.accepted() + 1);
      }
    }
    return response;
  }
  void StreamEnded() {
    absl::MutexLock lock(&mu_);
    --streams_live_;
  }

  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  mutable absl::Mutex mu_;
  bool silent_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<v1::StreamLoadRequest> requests_ ABSL_GUARDED_BY(mu_);
  int streams_opened_ ABSL_GUARDED_BY(mu_) = 0;
  int streams_live_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> authorizations_ ABSL_GUARDED_BY(mu_);
};

// The answers of many Forward calls, by call number, with how often each came.
class Answers {
 public:
  ReportForwarder::Done For(int call) {
    return [this, call](ForwardResult result) {
      absl::MutexLock lock(&mu_);
      ++times_[call];
      results_[call] = std::move(result);
    };
  }
  // Waits until `calls` calls were answered at least once.
  bool WaitForCalls(size_t calls, absl::Duration timeout = absl::Seconds(20)) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return times_.size() >= calls; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }
  bool answered(int call) const {
    absl::MutexLock lock(&mu_);
    return times_.count(call) > 0;
  }
  int times(int call) const {
    absl::MutexLock lock(&mu_);
    auto it = times_.find(call);
    return it == times_.end() ? 0 : it->second;
  }
  ForwardResult result(int call) const {
    absl::MutexLock lock(&mu_);
    return results_.at(call);
  }
  size_t calls() const {
    absl::MutexLock lock(&mu_);
    return times_.size();
  }

 private:
  mutable absl::Mutex mu_;
  std::map<int, int> times_ ABSL_GUARDED_BY(mu_);
  std::map<int, ForwardResult> results_ ABSL_GUARDED_BY(mu_);
};

std::vector<std::string> SourceIds(const std::vector<v1::LoadReport>& reports) {
  std::vector<std::string> ids;
  for (const v1::LoadReport& r : reports) ids.push_back(r.source_id());
  return ids;
}

std::vector<int> Indices(const ForwardResult& result) {
  std::vector<int> indices;
  for (const v1::ReportRejection& r : result.rejections) indices.push_back(r.index());
  return indices;
}

class ForwarderTest : public ::testing::Test {
 protected:
  ForwarderOptions Options() {
    ForwarderOptions options;
    options.token = kToken;
    options.backoff = {absl::Seconds(1), 2.0, absl::Seconds(8), 0};  // no jitter: exact delays
    // gRPC's own reconnect delays, short so a restarted owner is reached quickly.
    options.channel.reconnect =
        BackoffOptions{absl::Milliseconds(20), 1.6, absl::Milliseconds(200), 0};
    options.clock = &clock_;
    options.sweep_interval = absl::ZeroDuration();  // the tests sweep
    return options;
  }

  testing::FakeClock clock_;
};

// Calls made while a write is in flight share the next request; each call still gets its
// own answer, with the owner's rejections at its own indices (one bad report per call,
// at index call % 3).
TEST_F(ForwarderTest, ReportsReachTheOwnerInOrderOverOneStream) {
  FakeOwner owner;
  ReportForwarder forwarder(Options());
  Answers answers;
  constexpr int kCalls = 50;
  for (int call = 0; call < kCalls; ++call) {
    forwarder.Forward(owner.address(), Reports(3, 3 * call, {call % 3}), answers.For(call));
  }
  ASSERT_TRUE(answers.WaitForCalls(kCalls));
  for (int call = 0; call < kCalls; ++call) {
    ASSERT_EQ(answers.times(call), 1) << call;
    const ForwardResult result = answers.result(call);
    EXPECT_TRUE(result.status.ok()) << result.status;
    EXPECT_EQ(result.accepted, 2) << call;
    EXPECT_THAT(Indices(result), ElementsAre(call % 3)) << call;
    ASSERT_EQ(result.rejections.size(), 1u);
    EXPECT_EQ(result.rejections[0].code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));
  }
  const std::vector<v1::LoadReport> got = owner.reports();
  ASSERT_EQ(got.size(), 3u * kCalls);
  for (int i = 0; i < 3 * kCalls; ++i) {
    EXPECT_EQ(got[i].source_id(), absl::StrCat("replica-", i));
    EXPECT_EQ(got[i].chain_id(), "c");
    EXPECT_EQ(got[i].env_name(), "production");
    EXPECT_EQ(got[i].chainlet_name(), i % 3 == (i / 3) % 3 ? kBadChainlet : "A");
    EXPECT_EQ(got[i].in_flight_requests(), i);
  }
  const std::vector<v1::StreamLoadRequest> requests = owner.requests();
  for (size_t i = 0; i < requests.size(); ++i) EXPECT_EQ(requests[i].sequence(), i + 1);
  EXPECT_EQ(owner.streams_opened(), 1);
  EXPECT_THAT(owner.authorizations(), ElementsAre(std::string("Bearer ") + kToken));
  const ForwarderStats stats = forwarder.Stats();
  EXPECT_EQ(stats.streams_opened, 1);
  EXPECT_EQ(stats.requests_sent, static_cast<int64_t>(requests.size()));
  EXPECT_LE(stats.requests_sent, kCalls);
  EXPECT_EQ(stats.forwarded, 3 * kCalls);
  EXPECT_EQ(stats.accepted, 2 * kCalls);
  EXPECT_EQ(stats.rejected, kCalls);
  EXPECT_EQ(stats.held_reports, 0);
  EXPECT_EQ(stats.held_bytes, 0);
  std::cout << "sent " << kCalls << " calls of 3 reports; owner saw " << requests.size()
            << " requests on " << owner.streams_opened() << " stream(s)\n";
}

TEST_F(ForwarderTest, ManyThreadsShareOneStreamAndEachCallIsAnsweredOnce) {
  FakeOwner owner;
  ReportForwarder forwarder(Options());
  Answers answers;
  constexpr int kThreads = 4;
  constexpr int kCallsPerThread = 100;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCallsPerThread; ++i) {
        const int call = t * kCallsPerThread + i;
        forwarder.Forward(owner.address(), Reports(2, 2 * call), answers.For(call));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_TRUE(answers.WaitForCalls(kThreads * kCallsPerThread));
  int ok = 0;
  for (int call = 0; call < kThreads * kCallsPerThread; ++call) {
    EXPECT_EQ(answers.times(call), 1) << call;
    ok += answers.result(call).status.ok() && answers.result(call).accepted == 2;
  }
  EXPECT_EQ(ok, kThreads * kCallsPerThread);
  EXPECT_EQ(owner.reports().size(), 2u * kThreads * kCallsPerThread);
  EXPECT_EQ(owner.streams_opened(), 1);
  EXPECT_EQ(forwarder.Stats().streams_opened, 1);
  std::cout << kThreads * kCallsPerThread << " calls from " << kThreads << " threads: " << ok
            << " answered OK once each, over " << owner.streams_opened() << " stream\n";
}

TEST_F(ForwarderTest, OwnerRejectionsComeBackWithTheirIndicesAndCodes) {
  FakeOwner owner;
  ReportForwarder forwarder(Options());
  const ForwardResult result = forwarder.ForwardAndWait(owner.address(), Reports(5, 0, {1, 3}));
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.accepted, 3);
  ASSERT_EQ(result.rejections.size(), 2u);
  EXPECT_EQ(result.rejections[0].index(), 1);
  EXPECT_EQ(result.rejections[0].code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));
  EXPECT_EQ(result.rejections[0].message(), "no chainlet bad");
  EXPECT_EQ(result.rejections[1].index(), 3);
  const ForwarderStats stats = forwarder.Stats();
  EXPECT_EQ(stats.accepted, 3);
  EXPECT_EQ(stats.rejected, 2);
}

TEST_F(ForwarderTest, BatchesAboveTheRequestCapAreSplitAndAllArrive) {
  FakeOwner owner;
  ForwarderOptions options = Options();
  options.max_held_reports = 30'000;
  ReportForwarder forwarder(options);
  // The owner's cap (10 000 reports a request), with rejections in every part.
  const ForwardResult result =
      forwarder.ForwardAndWait(owner.address(), Reports(25'000, 0, {0, 10'000, 24'999}));
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.accepted, 24'997);
  EXPECT_THAT(Indices(result), ElementsAre(0, 10'000, 24'999));
  std::vector<int> sizes;
  for (const v1::StreamLoadRequest& r : owner.requests()) sizes.push_back(r.reports_size());
  EXPECT_THAT(sizes, ElementsAre(10'000, 10'000, 5'000));
  EXPECT_EQ(SourceIds(owner.reports()), SourceIds(Reports(25'000)));

  // And by bytes: 4 KiB messages.
  FakeOwner small_owner;
  options.channel.max_message_bytes = 4096;
  ReportForwarder small(options);
  const ForwardResult bytes_result =
      small.ForwardAndWait(small_owner.address(), Reports(1000, 0, {999}));
  ASSERT_TRUE(bytes_result.status.ok()) << bytes_result.status;
  EXPECT_EQ(bytes_result.accepted, 999);
  EXPECT_THAT(Indices(bytes_result), ElementsAre(999));
  const std::vector<v1::StreamLoadRequest> requests = small_owner.requests();
  EXPECT_GT(requests.size(), 10u);
  for (const v1::StreamLoadRequest& r : requests) EXPECT_LE(r.ByteSizeLong(), 4096u);
  EXPECT_EQ(SourceIds(small_owner.reports()), SourceIds(Reports(1000)));
  std::cout << "25000 reports went as " << sizes.size() << " requests; 1000 reports under 4 KiB "
            << "messages as " << requests.size() << " requests\n";
}

TEST_F(ForwarderTest, AnUnreachableOwnerIsAnsweredUnavailableAndBackedOffFrom) {
  std::string address;
  {
    FakeOwner gone;
    address = gone.address();
  }
  ReportForwarder forwarder(Options());
  const absl::Time start = absl::Now();
  ForwardResult first = forwarder.ForwardAndWait(address, Reports(2));
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(first.status.code(), absl::StatusCode::kUnavailable) << first.status;
  EXPECT_THAT(first.status.message(), HasSubstr(address));
  EXPECT_LT(took, absl::Seconds(10));

  // Backing off: answered at once, before Forward returns, without a new stream.
  Answers answers;
  forwarder.Forward(address, Reports(3), answers.For(0));
  ASSERT_TRUE(answers.answered(0));
  EXPECT_EQ(answers.result(0).status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(answers.result(0).status.message(), HasSubstr("next try in 1s"));
  EXPECT_EQ(forwarder.Stats().streams_opened, 1);

  // After the delay, one new attempt; then the delay doubles (options: x2, no jitter).
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(forwarder.ForwardAndWait(address, Reports(1)).status.code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(forwarder.Stats().streams_opened, 2);
  clock_.Advance(absl::Seconds(1));
  EXPECT_THAT(forwarder.ForwardAndWait(address, Reports(1)).status.message(),
              HasSubstr("next try in 1s"));
  EXPECT_EQ(forwarder.Stats().streams_opened, 2);
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(forwarder.ForwardAndWait(address, Reports(1)).status.code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(forwarder.Stats().streams_opened, 3);

  const ForwarderStats stats = forwarder.Stats();
  EXPECT_EQ(stats.unreachable, 2 + 3 + 1 + 1 + 1);
  EXPECT_EQ(stats.forwarded, 2 + 1 + 1);
  EXPECT_EQ(stats.held_reports, 0);
  std::cout << "dead owner: first answer in " << took << "; 5 calls, " << stats.streams_opened
            << " streams, " << stats.unreachable << " reports answered UNAVAILABLE\n";
}

TEST_F(ForwarderTest, AFullBufferIsAnsweredUnavailableAtOnceAndWhatIsHeldIsBounded) {
  FakeOwner owner;
  owner.set_silent(true);
  ForwarderOptions options = Options();
  options.max_held_reports = 10;
  ReportForwarder forwarder(options);
  Answers answers;
  constexpr int kCalls = 100;
  int refused_at_once = 0;
  int64_t most_held = 0;
  for (int call = 0; call < kCalls; ++call) {
    forwarder.Forward(owner.address(), Reports(4, 4 * call), answers.For(call));
    if (answers.answered(call)) {
      ++refused_at_once;
      EXPECT_EQ(answers.result(call).status.code(), absl::StatusCode::kUnavailable);
      EXPECT_THAT(answers.result(call).status.message(), HasSubstr("8 reports wait"));
    }
    most_held = std::max(most_held, forwarder.Stats().held_reports);
  }
  EXPECT_EQ(refused_at_once, kCalls - 2);
  EXPECT_FALSE(answers.answered(0));
  EXPECT_FALSE(answers.answered(1));
  EXPECT_EQ(most_held, 8);
  ForwarderStats stats = forwarder.Stats();
  EXPECT_EQ(stats.held_reports, 8);
  EXPECT_GT(stats.held_bytes, 0);
  EXPECT_EQ(stats.buffer_full, 4 * (kCalls - 2));
  ASSERT_TRUE(WaitFor([&] { return owner.requests().size() == 2; }));

  // The silent owner's stream ends when its oldest request is answer_timeout old.
  clock_.Advance(options.answer_timeout - absl::Seconds(1));
  forwarder.Sweep();
  EXPECT_FALSE(answers.answered(0));
  clock_.Advance(absl::Seconds(1));
  forwarder.Sweep();
  ASSERT_TRUE(answers.WaitForCalls(kCalls));
  for (int call : {0, 1}) {
    EXPECT_EQ(answers.times(call), 1);
    EXPECT_EQ(answers.result(call).status.code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(answers.result(call).status.message(), HasSubstr("did not answer within 5s"));
  }
  ASSERT_TRUE(WaitFor([&] { return forwarder.Stats().streams_live == 0; }));
  stats = forwarder.Stats();
  EXPECT_EQ(stats.held_reports, 0);
  EXPECT_EQ(stats.held_bytes, 0);
  EXPECT_EQ(stats.unreachable, 8);
  std::cout << "silent owner: " << kCalls << " calls of 4, " << refused_at_once
            << " refused at once, at most " << most_held << " reports held, " << stats.unreachable
            << " failed at the answer timeout\n";

  // The byte bound holds the same way.
  FakeOwner other;
  other.set_silent(true);
  options.max_held_reports = 1'000'000;
  options.max_held_bytes = 2000;
  ReportForwarder by_bytes(options);
  int taken = 0;
  for (int call = 0; call < 100; ++call) {
    by_bytes.Forward(other.address(), Reports(10, 10 * call), [](ForwardResult) {});
    EXPECT_LE(by_bytes.Stats().held_bytes, 2000);
    taken = static_cast<int>(by_bytes.Stats().forwarded);
  }
  EXPECT_GT(taken, 0);
  EXPECT_LT(taken, 1000);
  std::cout << "byte bound 2000: took " << taken << " of 1000 reports, holding "
            << by_bytes.Stats().held_bytes << " bytes\n";
}

TEST_F(ForwarderTest, AnOwnerRestartedOnTheSamePortIsReachedOverANewStream) {
  auto owner = std::make_unique<FakeOwner>();
  const int port = owner->port();
  const std::string address = owner->address();
  ReportForwarder forwarder(Options());
  ASSERT_TRUE(forwarder.ForwardAndWait(address, Reports(1)).status.ok());

  owner.reset();
  ASSERT_TRUE(WaitFor([&] { return forwarder.Stats().streams_live == 0; }));
  const ForwardResult while_down = forwarder.ForwardAndWait(address, Reports(1));
  EXPECT_EQ(while_down.status.code(), absl::StatusCode::kUnavailable) << while_down.status;

  owner = std::make_unique<FakeOwner>(port);
  ASSERT_EQ(owner->port(), port);
  int attempts = 0;
  std::map<absl::StatusCode, int> outcomes;
  const absl::Time restarted = absl::Now();
  ASSERT_TRUE(WaitFor([&] {
    clock_.Advance(absl::Seconds(8));  // past any backoff
    ++attempts;
    const ForwardResult r = forwarder.ForwardAndWait(address, Reports(1, 7));
    ++outcomes[r.status.code()];
    return r.status.ok() && r.accepted == 1;
  }));
  EXPECT_EQ(owner->streams_opened(), 1);
  EXPECT_THAT(SourceIds(owner->reports()), ElementsAre("replica-7"));
  EXPECT_GE(forwarder.Stats().streams_opened, 3);
  std::cout << "owner restarted: reached after " << absl::Now() - restarted << ", " << attempts
            << " attempts (" << outcomes[absl::StatusCode::kOk] << " OK, "
            << outcomes[absl::StatusCode::kUnavailable] << " UNAVAILABLE), "
            << forwarder.Stats().streams_opened << " streams opened in all\n";
}

TEST_F(ForwarderTest, ShutdownAnswersEveryPendingCallExactlyOnce) {
  FakeOwner owner;
  owner.set_silent(true);
  ForwarderOptions options = Options();
  options.max_reports_per_request = 4;
  auto forwarder = std::make_unique<ReportForwarder>(options);
  Answers answers;
  constexpr int kCalls = 5;
  for (int call = 0; call < kCalls; ++call) {
    forwarder->Forward(owner.address(), Reports(10, 10 * call), answers.For(call));  // 3 parts
  }
  ASSERT_TRUE(WaitFor([&] { return owner.requests().size() == 3 * kCalls; }));
  EXPECT_EQ(answers.calls(), 0u);

  forwarder->Shutdown();
  EXPECT_EQ(answers.calls(), static_cast<size_t>(kCalls));  // all answered by now
  forwarder->Forward(owner.address(), Reports(1), answers.For(kCalls));
  ASSERT_TRUE(answers.answered(kCalls));
  forwarder->Shutdown();
  const ForwarderStats stats = forwarder->Stats();
  forwarder.reset();
  for (int call = 0; call <= kCalls; ++call) {
    EXPECT_EQ(answers.times(call), 1) << call;
    EXPECT_EQ(answers.result(call).status.code(), absl::StatusCode::kUnavailable);
    EXPECT_EQ(answers.result(call).status.message(), "agent shutting down");
  }
  EXPECT_EQ(stats.shutting_down, 10 * kCalls + 1);
  EXPECT_EQ(stats.streams_live, 0);
  EXPECT_EQ(stats.held_reports, 0);
  ASSERT_TRUE(WaitFor([&] { return owner.streams_live() == 0; }));
  std::cout << "shutdown: " << kCalls + 1 << " calls answered once each, " << stats.shutting_down
            << " reports UNAVAILABLE\n";
}

TEST_F(ForwarderTest, IdlePeersAreDroppedWithTheirStreams) {
  FakeOwner owner;
  ForwarderOptions options = Options();
  options.idle_timeout = absl::Minutes(5);
  ReportForwarder forwarder(options);
  ASSERT_TRUE(forwarder.ForwardAndWait(owner.address(), Reports(1)).status.ok());
  clock_.Advance(absl::Minutes(4));
  forwarder.Sweep();
  EXPECT_EQ(forwarder.Stats().peers, 1);
  EXPECT_EQ(owner.streams_live(), 1);
  clock_.Advance(absl::Minutes(1));
  forwarder.Sweep();
  EXPECT_EQ(forwarder.Stats().peers, 0);
  ASSERT_TRUE(WaitFor([&] { return owner.streams_live() == 0; }));
  ASSERT_TRUE(WaitFor([&] { return forwarder.Stats().streams_live == 0; }));
  // Used again: a new stream, at once (dropping it was no failure).
  ASSERT_TRUE(forwarder.ForwardAndWait(owner.address(), Reports(1)).status.ok());
  EXPECT_EQ(owner.streams_opened(), 2);
}

TEST_F(ForwarderTest, PeersAreBoundedAndOnlyIdleOnesMakeRoom) {
  FakeOwner a;
  FakeOwner b;
  Answers answers;  // outlives the forwarder, which answers the held call as it goes
  ForwarderOptions options = Options();
  options.max_peers = 1;
  ReportForwarder forwarder(options);
  ASSERT_TRUE(forwarder.ForwardAndWait(a.address(), Reports(1)).status.ok());
  ASSERT_TRUE(forwarder.ForwardAndWait(b.address(), Reports(1)).status.ok());  // drops a
  EXPECT_EQ(forwarder.Stats().peers, 1);
  ASSERT_TRUE(WaitFor([&] { return a.streams_live() == 0; }));

  b.set_silent(true);
  forwarder.Forward(b.address(), Reports(1), answers.For(0));  // held for b
  forwarder.Forward(a.address(), Reports(2), answers.For(1));
  ASSERT_TRUE(answers.answered(1));
  EXPECT_EQ(answers.result(1).status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(answers.result(1).status.message(), HasSubstr("forwarding to 1 owners already"));
  EXPECT_EQ(forwarder.Stats().buffer_full, 2);
  EXPECT_FALSE(answers.answered(0));
}

TEST_F(ForwarderTest, ACallLargerThanAPeersWholeBoundIsInvalid) {
  FakeOwner owner;
  ForwarderOptions options = Options();
  options.max_held_reports = 10;
  ReportForwarder forwarder(options);
  const ForwardResult result = forwarder.ForwardAndWait(owner.address(), Reports(11));
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status.message(), HasSubstr("11 reports"));
  EXPECT_TRUE(forwarder.ForwardAndWait(owner.address(), {}).status.ok());
  EXPECT_EQ(owner.requests().size(), 0u);
}

// StreamLoad on an agent that owns c/production but not d/production: batch 1 (d) is
// forwarded to a silent owner, batch 2 (c) and batch 3 (both, and an unknown chainlet)
// follow. Answers keep request order: 2 and 3 wait behind 1, which the forwarder fails
// once the owner stays silent past its answer timeout.
TEST_F(ForwarderTest, StreamLoadAnswersKeepTheirOrderWhenPartsGoToTheOwner) {
  FakeOwner owner;
  owner.set_silent(true);
  DecisionLoopOptions loop_options;
  loop_options.agent_id = "here";
  DecisionLoop loop(loop_options, clock_);
  AppliedUpdate snapshot;
  snapshot.snapshot = true;
  snapshot.revision = 1;
  for (const char* chain : {"c", "d"}) {
    SyncedChainlet chainlet;
    chainlet.key.set_chain_id(chain);
    chainlet.key.set_env_name("production");
    chainlet.key.set_chainlet_name("A");
    chainlet.settings.max_replica = 10;
    chainlet.revision = 1;
    snapshot.upserts.push_back(chainlet);
  }
  loop.Apply(snapshot);
  loop.SetOwned({{"c", "production", 1, {}}}, /*reset=*/true);
  ReportForwarder forwarder(Options());
  Metrics metrics;
  AgentService service(ApiKeys(), &loop, &metrics);  // no keys: every caller
  service.SetRouting({[&](const std::string& chain, const std::string&) {
                        return chain == "d" ? owner.address() : std::string();
                      },
                      &forwarder});
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  auto stub = v1::Agent::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                                     grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  auto stream = stub->StreamLoad(&context);
  auto send = [&](int64_t sequence, std::vector<v1::LoadReport> reports) {
    v1::StreamLoadRequest request;
    request.set_sequence(sequence);
    for (v1::LoadReport& r : reports) *request.add_reports() = std::move(r);
    ASSERT_TRUE(stream->Write(request));
  };
  auto for_chain = [](const std::string& chain, const std::string& chainlet, double in_flight) {
    v1::LoadReport r = Report(1, chainlet, in_flight);
    r.set_chain_id(chain);
    return r;
  };
  auto in_flight_of_c = [&] {
    for (const ChainletLoad& l : loop.Loads(10)) {
      if (l.chain_id == "c") return l.in_flight_requests;
    }
    return -1.0;
  };
  send(1, {for_chain("d", "A", 5)});
  ASSERT_TRUE(WaitFor([&] { return owner.requests().size() == 1; }));
  send(2, {for_chain("c", "A", 7)});
  ASSERT_TRUE(WaitFor([&] { return in_flight_of_c() == 7; }));
  send(3, {for_chain("c", "A", 9), for_chain("d", "A", 6), for_chain("c", "Nope", 1)});
  ASSERT_TRUE(WaitFor([&] { return in_flight_of_c() == 9 && owner.requests().size() == 2; }));
  // The owner never answers: past the answer timeout the forwarder fails what it holds.
  clock_.Advance(absl::Seconds(6));
  forwarder.Sweep();
  std::vector<v1::StreamLoadResponse> answers(3);
  for (v1::StreamLoadResponse& answer : answers) ASSERT_TRUE(stream->Read(&answer));
  EXPECT_EQ(answers[0].sequence(), 1);
  EXPECT_EQ(answers[0].accepted(), 0);
  ASSERT_EQ(answers[0].rejections_size(), 1);
  EXPECT_EQ(answers[0].rejections(0).index(), 0);
  EXPECT_EQ(answers[0].rejections(0).code(), static_cast<int>(grpc::StatusCode::UNAVAILABLE));
  EXPECT_THAT(answers[0].rejections(0).message(),
              HasSubstr(absl::StrCat("the owner at ", owner.address())));
  EXPECT_EQ(answers[1].sequence(), 2);
  EXPECT_EQ(answers[1].accepted(), 1);
  EXPECT_EQ(answers[1].rejections_size(), 0);
  EXPECT_EQ(answers[2].sequence(), 3);
  EXPECT_EQ(answers[2].accepted(), 1);
  ASSERT_EQ(answers[2].rejections_size(), 2);  // ordered by index
  EXPECT_EQ(answers[2].rejections(0).index(), 1);
  EXPECT_EQ(answers[2].rejections(0).code(), static_cast<int>(grpc::StatusCode::UNAVAILABLE));
  EXPECT_EQ(answers[2].rejections(1).index(), 2);
  EXPECT_EQ(answers[2].rejections(1).code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));

  // A talking owner: a mixed batch is answered once both parts are in.
  owner.set_silent(false);
  clock_.Advance(absl::Seconds(60));  // past the backoff after the failure
  ASSERT_TRUE(WaitFor([&] {
    send(4, {for_chain("d", "A", 3), for_chain("c", "A", 4)});
    v1::StreamLoadResponse answer;
    return stream->Read(&answer) && answer.sequence() == 4 && answer.accepted() == 2;
  }));
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
  server->Shutdown(std::chrono::system_clock::now());
  forwarder.Shutdown();
}

// The real agent's StreamLoad takes what the forwarder sends.
TEST(ForwarderAgentTest, ARealAgentTakesForwardedReports) {
  constexpr char kKey[] = "key";
  testing::ScopedTempDir dir;
  ControlPlaneOptions cp;
  cp.listen = "127.0.0.1:0";
  cp.http_listen = "";
  cp.data_dir = dir.str();
  cp.api_keys = ApiKeys({kKey});
  cp.agent_tokens = ApiKeys({kToken});
  std::unique_ptr<ControlPlaneServer> control_plane = ControlPlaneServer::Start(cp).value();
  const std::string cp_address = absl::StrCat("127.0.0.1:", control_plane->grpc_port());
  auto cp_stub = v1::ControlPlane::NewStub(
      grpc::CreateChannel(cp_address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext create_context;
  create_context.AddMetadata("authorization", absl::StrCat("Api-Key ", kKey));
  v1::CreateChainRequest create;
  create.set_chain_id("c");
  create.add_chainlet_names("A");
  v1::Chain chain;
  ASSERT_TRUE(cp_stub->CreateChain(&create_context, create, &chain).ok());

  AgentOptions agent_options;
  agent_options.listen = "127.0.0.1:0";
  agent_options.http_listen = "";
  agent_options.api_keys = ApiKeys({kKey});
  agent_options.control_plane = cp_address;
  agent_options.agent_id = "owner";
  agent_options.agent_token = kToken;
  agent_options.run_ticker = false;
  std::unique_ptr<AgentServer> agent = AgentServer::Start(agent_options).value();
  ASSERT_TRUE(WaitFor([&] { return agent->loop().size() == 2; }));  // A in two environments

  ForwarderOptions options;
  options.token = kKey;  // the owner takes its reporters' keys
  options.sweep_interval = absl::ZeroDuration();
  ReportForwarder forwarder(options);
  std::vector<v1::LoadReport> reports = {Report(0, "A", 7), Report(0, "Nope", 1),
                                         Report(1, "A", -3), Report(2, "A", 7)};
  const ForwardResult result =
      forwarder.ForwardAndWait(absl::StrCat("127.0.0.1:", agent->grpc_port()), reports);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.accepted, 2);
  ASSERT_EQ(result.rejections.size(), 2u);
  EXPECT_EQ(result.rejections[0].index(), 1);
  EXPECT_EQ(result.rejections[0].code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));
  EXPECT_EQ(result.rejections[1].index(), 2);
  EXPECT_EQ(result.rejections[1].code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));

  // Without the key the owner refuses the stream: UNAVAILABLE here, naming why.
  ForwarderOptions keyless;
  keyless.sweep_interval = absl::ZeroDuration();
  ReportForwarder stranger(keyless);
  const ForwardResult refused =
      stranger.ForwardAndWait(absl::StrCat("127.0.0.1:", agent->grpc_port()), reports);
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(refused.status.message(), HasSubstr("UNAUTHENTICATED"));
  agent->Shutdown(absl::ZeroDuration());
}

}  // namespace
}  // namespace chainscale
