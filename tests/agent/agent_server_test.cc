// The agent over real gRPC beside a real control plane, with a fake clock and ticks
// driven by the test: reports and their errors, decisions served and sent back to the
// control plane, StreamLoad, WatchScalingDecisions, health and /metrics.
#include "agent/server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/error_details.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "chainscale/v1/agent.grpc.pb.h"
#include "common/field_violations.h"
#include "common/http_client.h"
#include "control_plane/server.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/raw_grpc.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace chainscale {
namespace {

using ::testing::HasSubstr;

constexpr char kKey[] = "key";
constexpr char kToken[] = "token";

using testing::WaitFor;

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->AddMetadata("authorization", std::string("Api-Key ") + kKey);
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  return context;
}

class AgentServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ControlPlaneOptions cp;
    cp.listen = "127.0.0.1:0";
    cp.http_listen = "";
    cp.data_dir = dir_.str();
    cp.api_keys = ApiKeys({kKey});
    cp.agent_tokens = ApiKeys({kToken});
    control_plane_ = ControlPlaneServer::Start(cp).value();
    const std::string cp_address = absl::StrCat("127.0.0.1:", control_plane_->grpc_port());
    cp_stub_ = v1::ControlPlane::NewStub(
        grpc::CreateChannel(cp_address, grpc::InsecureChannelCredentials()));

    v1::CreateChainRequest create;
    create.set_chain_id("c");
    create.add_chainlet_names("A");
    create.add_chainlet_names("B");
    v1::Chain chain;
    ASSERT_TRUE(cp_stub_->CreateChain(Context().get(), create, &chain).ok());
    v1::UpdateChainletEnvironmentAutoscalingSettingsRequest update;
    update.set_chain_id("c");
    update.set_env_name("production");
    for (const char* name : {"A", "B"}) {
      auto* u = update.add_updates();
      u->set_chainlet_name(name);
      auto* s = u->mutable_autoscaling_settings();
      s->set_max_replica(10);
      s->set_concurrency_target(10);
      s->set_target_utilization_percentage(70);
      s->set_autoscaling_window(10);
      s->set_scale_down_delay(2);
    }
    v1::UpdateChainletEnvironmentAutoscalingSettingsResponse updated;
    ASSERT_TRUE(
        cp_stub_->UpdateChainletEnvironmentAutoscalingSettings(Context().get(), update, &updated)
            .ok());

    AgentOptions options;
    options.listen = "127.0.0.1:0";
    options.http_listen = "127.0.0.1:0";
    options.api_keys = ApiKeys({kKey});
    options.control_plane = cp_address;
    options.agent_id = "agent-under-test";
    options.agent_token = kToken;
    options.selector = ParseSelector("c/production").value();
    options.clock = &clock_;
    options.run_ticker = false;
    options.report_staleness = absl::Seconds(2);
    agent_ = AgentServer::Start(options).value();
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", agent_->grpc_port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::Agent::NewStub(channel_);
    ASSERT_TRUE(WaitFor([&] { return agent_->loop().size() == 2; }));
  }

  void TearDown() override {
    agent_.reset();
    control_plane_.reset();
  }

  static v1::ReportLoadRequest Reports(std::vector<std::pair<std::string, double>> loads) {
    v1::ReportLoadRequest request;
    for (const auto& [chainlet, in_flight] : loads) {
      v1::LoadReport* r = request.add_reports();
      r->set_source_id("replica-0");
      r->set_chain_id("c");
      r->set_env_name("production");
      r->set_chainlet_name(chainlet);
      r->set_in_flight_requests(in_flight);
    }
    return request;
  }

  void Second() {
    clock_.Advance(absl::Seconds(1));
    agent_->Tick();
  }

  testing::FakeClock clock_;
  testing::ScopedTempDir dir_;
  std::unique_ptr<ControlPlaneServer> control_plane_;
  std::unique_ptr<v1::ControlPlane::Stub> cp_stub_;
  std::unique_ptr<AgentServer> agent_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Agent::Stub> stub_;
};

TEST_F(AgentServerTest, ReportLoadAnswersWithDecisionsAndTheControlPlaneStoresThem) {
  v1::ReportLoadResponse response;
  grpc::Status status = stub_->ReportLoad(Context().get(), Reports({{"A", 25}, {"B", 1}}), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.decisions_size(), 2);
  EXPECT_EQ(response.decisions(0).chainlet_name(), "A");
  EXPECT_EQ(response.decisions(0).desired_replicas(), 4);
  EXPECT_EQ(response.decisions(0).status(), v1::ScalingDecision::ACCEPTED);
  EXPECT_EQ(response.decisions(1).desired_replicas(), 1);

  v1::GetScalingDecisionRequest get;
  get.set_chain_id("c");
  get.set_env_name("production");
  get.set_chainlet_name("A");
  v1::ScalingDecision decision;
  ASSERT_TRUE(stub_->GetScalingDecision(Context().get(), get, &decision).ok());
  EXPECT_EQ(decision.desired_replicas(), 4);
  EXPECT_EQ(decision.agent_id(), "agent-under-test");

  Second();  // sends the changed decisions to the control plane
  v1::GetChainEnvironmentRequest env_request;
  env_request.set_chain_id("c");
  env_request.set_env_name("production");
  ASSERT_TRUE(WaitFor([&] {
    v1::ChainEnvironment env;
    return cp_stub_->GetChainEnvironment(Context().get(), env_request, &env).ok() &&
           env.chainlet_settings(0).decision().desired_replicas() == 4;
  }));
}

TEST_F(AgentServerTest, BadReportsGetPreciseCodes) {
  v1::ReportLoadResponse response;
  v1::ReportLoadRequest nan = Reports({{"A", std::nan("")}});
  grpc::Status status = stub_->ReportLoad(Context().get(), nan, &response);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  google::rpc::Status details;
  ASSERT_TRUE(grpc::ExtractErrorDetails(status, &details).ok());
  google::rpc::BadRequest bad_request;
  ASSERT_TRUE(details.details(0).UnpackTo(&bad_request));
  EXPECT_EQ(bad_request.field_violations(0).field(), "reports[0].in_flight_requests");

  EXPECT_EQ(stub_->ReportLoad(Context().get(), Reports({{"Nope", 1}}), &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::ReportLoadRequest elsewhere = Reports({{"A", 1}});
  elsewhere.mutable_reports(0)->set_env_name("development");
  EXPECT_EQ(stub_->ReportLoad(Context().get(), elsewhere, &response).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  grpc::ClientContext no_key;
  EXPECT_EQ(stub_->ReportLoad(&no_key, Reports({{"A", 1}}), &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(AgentServerTest, StreamLoadAnswersEachBatchNamingRejectedReports) {
  grpc::ClientContext context;
  context.AddMetadata("authorization", std::string("Bearer ") + kKey);
  auto stream = stub_->StreamLoad(&context);
  v1::StreamLoadRequest good;
  good.set_sequence(1);
  *good.mutable_reports() = Reports({{"A", 7}, {"B", 7}}).reports();
  v1::StreamLoadRequest mixed;
  mixed.set_sequence(2);
  *mixed.mutable_reports() = Reports({{"A", 14}, {"Nope", 1}, {"B", -3}}).reports();
  ASSERT_TRUE(stream->Write(good));
  ASSERT_TRUE(stream->Write(mixed));
  ASSERT_TRUE(stream->WritesDone());
  v1::StreamLoadResponse first;
  v1::StreamLoadResponse second;
  ASSERT_TRUE(stream->Read(&first));
  ASSERT_TRUE(stream->Read(&second));
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(first.sequence(), 1u);
  EXPECT_EQ(first.accepted(), 2);
  EXPECT_EQ(first.rejections_size(), 0);
  EXPECT_EQ(second.sequence(), 2u);
  EXPECT_EQ(second.accepted(), 1);
  ASSERT_EQ(second.rejections_size(), 2);
  EXPECT_EQ(second.rejections(0).index(), 1);
  EXPECT_EQ(second.rejections(0).code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));
  EXPECT_EQ(second.rejections(1).index(), 2);
  EXPECT_EQ(second.rejections(1).code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  // The accepted report counted: A's latest load is 14 → 2 replicas.
  Second();
  EXPECT_EQ(agent_->loop().Get([] {
    v1::ChainletKey k;
    k.set_chain_id("c");
    k.set_env_name("production");
    k.set_chainlet_name("A");
    return k;
  }())->desired_replicas(), 2);
}

TEST_F(AgentServerTest, WatchSendsCurrentDecisionsThenChanges) {
  grpc::ClientContext context;
  context.AddMetadata("authorization", std::string("Api-Key ") + kKey);
  v1::WatchScalingDecisionsRequest request;
  request.set_chain_id("c");
  request.set_env_name("production");
  auto reader = stub_->WatchScalingDecisions(&context, request);
  v1::ScalingDecision d;
  ASSERT_TRUE(reader->Read(&d));
  EXPECT_EQ(d.chainlet_name(), "A");
  ASSERT_TRUE(reader->Read(&d));
  EXPECT_EQ(d.chainlet_name(), "B");
  v1::ReportLoadResponse response;
  ASSERT_TRUE(stub_->ReportLoad(Context().get(), Reports({{"B", 30}}), &response).ok());
  ASSERT_TRUE(reader->Read(&d));
  EXPECT_EQ(d.chainlet_name(), "B");
  EXPECT_EQ(d.desired_replicas(), 5);
  EXPECT_EQ(d.status(), v1::ScalingDecision::ACCEPTED);
  context.TryCancel();
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(AgentServerTest, ListPagesInKeyOrder) {
  v1::ListScalingDecisionsRequest request;
  request.set_page_size(1);
  v1::ListScalingDecisionsResponse page;
  ASSERT_TRUE(stub_->ListScalingDecisions(Context().get(), request, &page).ok());
  ASSERT_EQ(page.decisions_size(), 1);
  EXPECT_EQ(page.decisions(0).chainlet_name(), "A");
  request.set_page_token(page.next_page_token());
  ASSERT_TRUE(stub_->ListScalingDecisions(Context().get(), request, &page).ok());
  ASSERT_EQ(page.decisions_size(), 1);
  EXPECT_EQ(page.decisions(0).chainlet_name(), "B");
  EXPECT_TRUE(page.next_page_token().empty());
}

TEST_F(AgentServerTest, HealthMetricsAndShutdown) {
  EXPECT_EQ(testing::HealthStatus(channel_, "chainscale.v1.Agent"), 1);
  v1::ReportLoadResponse response;
  ASSERT_TRUE(stub_->ReportLoad(Context().get(), Reports({{"A", 25}}), &response).ok());
  Second();
  absl::StatusOr<HttpClientResponse> metrics =
      HttpCall(absl::StrCat("127.0.0.1:", agent_->http_port()), {"GET", "/metrics", {}, ""});
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  const std::string labels = "{chain=\"c\",environment=\"production\",chainlet=\"A\"}";
  EXPECT_THAT(metrics->body, HasSubstr("chainscale_desired_replicas" + labels + " 4\n"));
  EXPECT_THAT(metrics->body, HasSubstr("chainscale_concurrent_requests" + labels + " 25\n"));
  // The cold start (ACCEPTED), then the tick: A and B unchanged.
  EXPECT_THAT(metrics->body, HasSubstr("chainscale_decisions_total{status=\"ACCEPTED\"} 1\n"));
  EXPECT_THAT(metrics->body, HasSubstr("chainscale_decisions_total{status=\"UNCHANGED\"} 2\n"));
  EXPECT_THAT(metrics->body, HasSubstr("chainscale_sync_connected 1\n"));
  EXPECT_THAT(metrics->body,
              HasSubstr("chainscale_rpc_requests_total{method=\"ReportLoad\",code=\"OK\"} 1\n"));
  agent_->Shutdown();
  EXPECT_EQ(testing::HealthStatus(channel_, ""), -1);
}

}  // namespace
}  // namespace chainscale
