// ReportStream against fake agents on loopback port 0: the latest offered report is sent
// with the API key, a withdrawn one never; the stream moves to the next address when one
// is unreachable, refuses as UNAVAILABLE, answers out of order or not at all; other
// refusals keep the stream; Flush waits for the latest offer's answer, and no longer.
#include "tools/reporter/report_stream.h"

#include <grpcpp/grpcpp.h>

#include <memory>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/wait.h"

namespace chainscale {
namespace {

using ::chainscale::testing::WaitFor;

enum class Behaviour { kAccept, kRefuseUnavailable, kRefuseNotFound, kOutOfOrder, kSilent };

// A StreamLoad server that records what it receives and answers as told.
class FakeAgent final : public v1::Agent::Service {
 public:
  explicit FakeAgent(Behaviour behaviour, const std::string& listen = "127.0.0.1:0")
      : behaviour_(behaviour) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~FakeAgent() override { Shutdown(); }

  void Shutdown() {
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
  }

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

  grpc::Status StreamLoad(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::StreamLoadResponse, v1::StreamLoadRequest>* stream) override {
    {
      absl::MutexLock lock(&mu_);
      ++streams_;
      auto it = context->client_metadata().find("authorization");
      if (it != context->client_metadata().end()) {
        authorization_ = std::string(it->second.data(), it->second.size());
      }
    }
    v1::StreamLoadRequest request;
    while (stream->Read(&request)) {
      {
        absl::MutexLock lock(&mu_);
        for (const v1::LoadReport& r : request.reports()) received_.push_back(r);
      }
      v1::StreamLoadResponse response;
      response.set_sequence(request.sequence());
      switch (behaviour_) {
        case Behaviour::kAccept:
          response.set_accepted(request.reports_size());
          break;
        case Behaviour::kRefuseUnavailable:
        case Behaviour::kRefuseNotFound: {
          v1::ReportRejection* rejection = response.add_rejections();
          rejection->set_index(0);
          rejection->set_code(behaviour_ == Behaviour::kRefuseUnavailable
                                  ? grpc::StatusCode::UNAVAILABLE
                                  : grpc::StatusCode::NOT_FOUND);
          rejection->set_message("owner unreachable");
          break;
        }
        case Behaviour::kOutOfOrder:
          response.set_sequence(request.sequence() + 100);
          break;
        case Behaviour::kSilent:
          continue;
      }
      if (!stream->Write(response)) break;
    }
    return grpc::Status::OK;
  }

  std::vector<v1::LoadReport> received() const {
    absl::MutexLock lock(&mu_);
    return received_;
  }
  int streams() const {
    absl::MutexLock lock(&mu_);
    return streams_;
  }
  std::string authorization() const {
    absl::MutexLock lock(&mu_);
    return authorization_;
  }

 private:
  const Behaviour behaviour_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  mutable absl::Mutex mu_;
  std::vector<v1::LoadReport> received_ ABSL_GUARDED_BY(mu_);
  int streams_ ABSL_GUARDED_BY(mu_) = 0;
  std::string authorization_ ABSL_GUARDED_BY(mu_);
};

v1::LoadReport Report(double in_flight) {
  v1::LoadReport report;
  report.set_source_id("replica-0");
  report.set_chain_id("demo");
  report.set_env_name("production");
  report.set_chainlet_name("HelloWorld");
  report.set_in_flight_requests(in_flight);
  return report;
}

// An address where nothing listens: a server's port after it stopped.
std::string ClosedAddress() {
  FakeAgent gone(Behaviour::kAccept);
  const std::string address = gone.address();
  gone.Shutdown();
  return address;
}

ReportStreamOptions Options(std::vector<std::string> agents) {
  ReportStreamOptions options;
  options.agents = std::move(agents);
  options.api_key = "reporter-key";
  options.backoff = {absl::Milliseconds(20), 1.6, absl::Milliseconds(200), 0.2};
  options.connect_timeout = absl::Seconds(2);
  options.answer_timeout = absl::Milliseconds(300);
  return options;
}

TEST(ReportStreamTest, SendsTheLatestOfferWithTheApiKey) {
  FakeAgent agent(Behaviour::kAccept);
  ReportStream stream(Options({agent.address()}));
  stream.Offer(Report(1));
  stream.Offer(Report(2));  // replaces 1 before anything was sent
  stream.Start();
  ASSERT_TRUE(WaitFor([&] { return stream.stats().reports_accepted == 1; }));
  stream.Offer(Report(3));
  ASSERT_TRUE(WaitFor([&] { return stream.stats().reports_accepted == 2; }));
  const std::vector<v1::LoadReport> received = agent.received();
  ASSERT_EQ(received.size(), 2u);
  EXPECT_EQ(received[0].in_flight_requests(), 2);
  EXPECT_EQ(received[1].in_flight_requests(), 3);
  EXPECT_EQ(received[1].chainlet_name(), "HelloWorld");
  EXPECT_EQ(agent.authorization(), "Api-Key reporter-key");
  const ReportStream::Stats stats = stream.stats();
  EXPECT_EQ(stats.reports_sent, 2);
  EXPECT_EQ(stats.streams_opened, 1);
  EXPECT_TRUE(stats.connected);
  EXPECT_EQ(stats.agent, agent.address());
  stream.Stop();
  EXPECT_FALSE(stream.stats().connected);
}

TEST(ReportStreamTest, AWithdrawnReportIsNeverSent) {
  FakeAgent agent(Behaviour::kAccept);
  ReportStream stream(Options({agent.address()}));
  stream.Offer(Report(1));
  stream.Withdraw();
  stream.Start();
  ASSERT_TRUE(WaitFor([&] { return stream.stats().connected; }));
  stream.Offer(Report(4));
  ASSERT_TRUE(WaitFor([&] { return stream.stats().reports_accepted == 1; }));
  ASSERT_EQ(agent.received().size(), 1u);
  EXPECT_EQ(agent.received()[0].in_flight_requests(), 4);
}

TEST(ReportStreamTest, MovesPastAnUnreachableAddress) {
  FakeAgent second(Behaviour::kAccept);
  ReportStream stream(Options({ClosedAddress(), second.address()}));
  stream.Offer(Report(5));
  stream.Start();
  ASSERT_TRUE(WaitFor([&] { return stream.stats().reports_accepted == 1; }));
  EXPECT_EQ(second.received().at(0).in_flight_requests(), 5);
  EXPECT_EQ(stream.stats().agent, second.address());
  EXPECT_EQ(stream.stats().stream_attempts, 2);
  EXPECT_EQ(stream.stats().streams_opened, 1);
}

TEST(ReportStreamTest, MovesOnWhenTheAgentCannotReachTheOwner) {
  FakeAgent first(Behaviour::kRefuseUnavailable);
  FakeAgent second(Behaviour::kAccept);
  ReportStream stream(Options({first.address(), second.address()}));
  stream.Offer(Report(1));
  stream.Start();
  ASSERT_TRUE(WaitFor([&] { return stream.stats().reports_rejected == 1; }));
  stream.Offer(Report(2));
  ASSERT_TRUE(WaitFor([&] { return stream.stats().reports_accepted == 1; }));
  EXPECT_EQ(second.received().at(0).in_flight_requests(), 2);
  EXPECT_EQ(first.received().size(), 1u);
  EXPECT_EQ(stream.stats().streams_opened, 2);
}

TEST(ReportStreamTest, KeepsTheStreamOnOtherRefusals) {
  FakeAgent first(Behaviour::kRefuseNotFound);
  FakeAgent second(Behaviour::kAccept);
  ReportStream stream(Options({first.address(), second.address()}));
  stream.Start();
  for (int i = 1; i <= 3; ++i) {
    stream.Offer(Report(i));
    ASSERT_TRUE(WaitFor([&] { return stream.stats().reports_rejected == i; }));
  }
  EXPECT_EQ(first.received().size(), 3u);
  EXPECT_EQ(first.streams(), 1);
  EXPECT_TRUE(second.received().empty());
}

TEST(ReportStreamTest, MovesOnWhenAnswersComeOutOfOrder) {
  FakeAgent first(Behaviour::kOutOfOrder);
  FakeAgent second(Behaviour::kAccept);
  ReportStream stream(Options({first.address(), second.address()}));
  stream.Offer(Report(1));
  stream.Start();
  ASSERT_TRUE(WaitFor([&] { return stream.stats().agent == second.address(); }));
  stream.Offer(Report(2));
  ASSERT_TRUE(WaitFor([&] { return stream.stats().reports_accepted == 1; }));
  EXPECT_EQ(first.received().size(), 1u);
  EXPECT_EQ(stream.stats().reports_accepted, 1);
}

TEST(ReportStreamTest, MovesOnWhenNoAnswerComes) {
  FakeAgent first(Behaviour::kSilent);
  FakeAgent second(Behaviour::kAccept);
  ReportStream stream(Options({first.address(), second.address()}));
  stream.Offer(Report(1));
  stream.Start();
  ASSERT_TRUE(WaitFor([&] { return stream.stats().agent == second.address(); }));
  stream.Offer(Report(2));
  ASSERT_TRUE(WaitFor([&] { return stream.stats().reports_accepted == 1; }));
  EXPECT_EQ(first.received().size(), 1u);
}

// The header promises Stop returns whatever the agent does: here the agent holds the
// stream open and never answers, and the answer timeout is far away.
TEST(ReportStreamTest, StopReturnsWhileAnAnswerIsOutstanding) {
  FakeAgent agent(Behaviour::kSilent);
  ReportStreamOptions options = Options({agent.address()});
  options.answer_timeout = absl::Hours(1);
  ReportStream stream(options);
  stream.Offer(Report(1));
  stream.Start();
  ASSERT_TRUE(WaitFor([&] { return agent.received().size() == 1; }));
  stream.Stop();
  EXPECT_FALSE(stream.stats().connected);
  EXPECT_EQ(stream.stats().reports_accepted, 0);
  stream.Stop();  // idempotent
}

// A process on its way out offers its last report (a drained replica's 0) and flushes
// it before Stop, so the agent does not count the previous value until it goes stale.
TEST(ReportStreamTest, FlushWaitsForTheLatestOfferToBeAnswered) {
  FakeAgent agent(Behaviour::kAccept);
  ReportStream stream(Options({agent.address()}));
  EXPECT_TRUE(stream.Flush(absl::ZeroDuration())) << "nothing offered yet";
  stream.Offer(Report(3));
  EXPECT_FALSE(stream.Flush(absl::ZeroDuration())) << "not started: nothing sent";
  stream.Start();
  ASSERT_TRUE(stream.Flush(absl::Seconds(20)));
  stream.Offer(Report(0));
  ASSERT_TRUE(stream.Flush(absl::Seconds(20)));
  stream.Stop();
  const std::vector<v1::LoadReport> received = agent.received();
  ASSERT_EQ(received.size(), 2u);
  EXPECT_EQ(received[1].in_flight_requests(), 0);
  // A withdrawn offer has nothing left to deliver.
  stream.Offer(Report(9));
  stream.Withdraw();
  EXPECT_TRUE(stream.Flush(absl::ZeroDuration()));
}

TEST(ReportStreamTest, FlushGivesUpWhenNoAnswerComes) {
  FakeAgent agent(Behaviour::kSilent);
  ReportStreamOptions options = Options({agent.address()});
  options.answer_timeout = absl::Hours(1);
  ReportStream stream(options);
  stream.Offer(Report(1));
  stream.Start();
  ASSERT_TRUE(WaitFor([&] { return agent.received().size() == 1; }));
  EXPECT_FALSE(stream.Flush(absl::Milliseconds(50)));
  stream.Stop();
  EXPECT_FALSE(stream.Flush(absl::Seconds(20))) << "stopped: it returns at once";
}

TEST(ReportStreamTest, ComesBackToAnAgentThatReturns) {
  auto agent = std::make_unique<FakeAgent>(Behaviour::kAccept);
  const std::string address = agent->address();
  ReportStream stream(Options({address}));
  stream.Offer(Report(1));
  stream.Start();
  ASSERT_TRUE(WaitFor([&] { return stream.stats().reports_accepted == 1; }));
  agent.reset();  // the agent goes away, and the stream with it
  ASSERT_TRUE(WaitFor([&] { return !stream.stats().connected; }));
  FakeAgent back(Behaviour::kAccept, address);
  stream.Offer(Report(2));
  ASSERT_TRUE(WaitFor([&] { return stream.stats().reports_accepted == 2; }));
  EXPECT_EQ(back.received().at(0).in_flight_requests(), 2);
  EXPECT_GE(stream.stats().streams_opened, 2);
}

}  // namespace
}  // namespace chainscale
