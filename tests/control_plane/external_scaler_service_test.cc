// KEDA's external scaler over real gRPC on a loopback port, on a real store and decision
// feed: StreamIsActive sends the state at once, pushes when a stored decision moves the
// chainlet off zero and back, sends nothing while it stays above zero, ignores other
// chainlets, and ends with UNAVAILABLE at shutdown; refused streams end with their code;
// the unary calls answer the stored decision; calls before the store opens are
// UNAVAILABLE.
#include "control_plane/external_scaler_service.h"

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace chainscale {
namespace {

constexpr char kKey[] = "keda-service-key";

externalscaler::ScaledObjectRef Ref(const std::string& chainlet, const std::string& key = kKey) {
  externalscaler::ScaledObjectRef ref;
  ref.set_name("model");
  ref.set_namespace_("serving");
  auto& metadata = *ref.mutable_scalermetadata();
  metadata["scalerAddress"] = "control-plane:50051";
  metadata["chain_id"] = "keda";
  metadata["chainlet_name"] = chainlet;
  if (!key.empty()) metadata["api_key"] = key;
  return ref;
}

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  return context;
}

// One StreamIsActive call, read on its own thread.
class ActivityReader {
 public:
  ActivityReader(externalscaler::ExternalScaler::Stub& stub,
                 const externalscaler::ScaledObjectRef& ref)
      : context_(Context()), reader_(stub.StreamIsActive(context_.get(), ref)) {
    thread_ = std::thread([this] {
      externalscaler::IsActiveResponse message;
      while (reader_->Read(&message)) {
        absl::MutexLock lock(&mu_);
        results_.push_back(message.result());
      }
      grpc::Status status = reader_->Finish();
      absl::MutexLock lock(&mu_);
      status_ = status;
    });
  }
  ~ActivityReader() {
    context_->TryCancel();
    thread_.join();
  }

  std::vector<bool> results() {
    absl::MutexLock lock(&mu_);
    return results_;
  }
  std::optional<grpc::Status> status() {
    absl::MutexLock lock(&mu_);
    return status_;
  }
  bool WaitForCount(size_t n) {
    return testing::WaitFor([&] { return results().size() >= n; });
  }
  bool WaitForEnd() {
    return testing::WaitFor([&] { return status().has_value(); });
  }

 private:
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientReader<externalscaler::IsActiveResponse>> reader_;
  std::thread thread_;
  absl::Mutex mu_;
  std::vector<bool> results_ ABSL_GUARDED_BY(mu_);
  std::optional<grpc::Status> status_ ABSL_GUARDED_BY(mu_);
};

class ExternalScalerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions options;
    options.path = dir_.str();
    options.sync_writes = false;
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    StoreMutation m;
    m.change.set_revision(1);
    v1::Chain chain;
    chain.set_chain_id("keda");
    chain.add_environments("production");
    for (const std::string name : {"Model", "Other"}) {
      chain.add_chainlet_names(name);
      v1::ChainletState* state = m.change.add_upserts();
      state->mutable_key()->set_chain_id("keda");
      state->mutable_key()->set_env_name("production");
      state->mutable_key()->set_chainlet_name(name);
      state->mutable_settings()->set_min_replica(0);
      state->mutable_settings()->set_max_replica(10);
    }
    m.chain_puts.push_back(chain);
    absl::Status committed = store_->CommitBatch({&m});
    ASSERT_TRUE(committed.ok()) << committed;
    feed_ = std::make_unique<DecisionFeed>(store_.get(), DecisionFeedOptions{});
    scaler_ = std::make_unique<KedaScaler>(store_.get());

    service_ = std::make_unique<ExternalScalerService>(ApiKeys({kKey}), &metrics_);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = externalscaler::ExternalScaler::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (server_ != nullptr) {
      service_->FinishStreams();
      server_->Shutdown();
    }
    service_->SetBackends(nullptr, nullptr);
  }

  void Open() { service_->SetBackends(scaler_.get(), feed_.get()); }

  // Stores and publishes, as the committer does.
  void Decide(const std::string& chainlet, int32_t desired) {
    v1::ScalingDecision d;
    d.set_chain_id("keda");
    d.set_env_name("production");
    d.set_chainlet_name(chainlet);
    d.set_desired_replicas(desired);
    for (const absl::Status& s : store_->PutDecisions({d})) ASSERT_TRUE(s.ok()) << s;
    feed_->Publish({d});
  }

  int64_t Metric(const std::string& chainlet) {
    externalscaler::GetMetricsRequest request;
    *request.mutable_scaledobjectref() = Ref(chainlet);
    externalscaler::GetMetricsResponse response;
    grpc::Status status = stub_->GetMetrics(Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.metricvalues_size(), 1);
    if (response.metricvalues_size() != 1) return -1;
    EXPECT_EQ(response.metricvalues(0).metricname(),
              "chainscale-keda-production-" + absl::AsciiStrToLower(chainlet));
    EXPECT_EQ(response.metricvalues(0).metricvaluefloat(),
              static_cast<double>(response.metricvalues(0).metricvalue()));
    return response.metricvalues(0).metricvalue();
  }

  testing::ScopedTempDir dir_;
  Metrics metrics_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<DecisionFeed> feed_;
  std::unique_ptr<KedaScaler> scaler_;
  std::unique_ptr<ExternalScalerService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<externalscaler::ExternalScaler::Stub> stub_;
};

TEST_F(ExternalScalerServiceTest, StreamPushesWhenTheChainletLeavesAndReturnsToZero) {
  Open();
  ActivityReader model(*stub_, Ref("Model"));
  ActivityReader other(*stub_, Ref("Other"));
  ASSERT_TRUE(model.WaitForCount(1));
  ASSERT_TRUE(other.WaitForCount(1));
  EXPECT_EQ(model.results(), std::vector<bool>{false});

  Decide("Model", 3);  // the cold start
  ASSERT_TRUE(model.WaitForCount(2));
  EXPECT_EQ(model.results(), (std::vector<bool>{false, true}));
  EXPECT_EQ(Metric("Model"), 3);

  // Still above zero: nothing to send. Other's push, published after, proves the feed
  // has handed this decision to Model's stream too.
  Decide("Model", 5);
  Decide("Other", 1);
  ASSERT_TRUE(other.WaitForCount(2));
  EXPECT_EQ(other.results(), (std::vector<bool>{false, true}));

  Decide("Model", 0);
  ASSERT_TRUE(model.WaitForCount(3));
  EXPECT_EQ(model.results(), (std::vector<bool>{false, true, false}));
  EXPECT_EQ(Metric("Model"), 0);
  EXPECT_EQ(other.results(), (std::vector<bool>{false, true}));
  EXPECT_FALSE(model.status().has_value());

  // Shutdown ends the streams with UNAVAILABLE.
  service_->FinishStreams();
  ASSERT_TRUE(model.WaitForEnd());
  EXPECT_EQ(model.status()->error_code(), grpc::StatusCode::UNAVAILABLE);
  ASSERT_TRUE(other.WaitForEnd());
  EXPECT_EQ(other.status()->error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(model.results().size(), 3u);
}

TEST_F(ExternalScalerServiceTest, StreamStartsFromTheStoredDecision) {
  Open();
  Decide("Model", 2);
  ActivityReader model(*stub_, Ref("Model"));
  ASSERT_TRUE(model.WaitForCount(1));
  EXPECT_EQ(model.results(), std::vector<bool>{true});
}

TEST_F(ExternalScalerServiceTest, RefusedStreamsEndWithTheirCode) {
  Open();
  ActivityReader wrong_key(*stub_, Ref("Model", "wrong"));
  ActivityReader unknown(*stub_, Ref("Nope"));
  externalscaler::ScaledObjectRef no_chain = Ref("Model");
  no_chain.mutable_scalermetadata()->erase("chain_id");
  ActivityReader invalid(*stub_, no_chain);
  for (auto [reader, code] : {std::pair{&wrong_key, grpc::StatusCode::UNAUTHENTICATED},
                              std::pair{&unknown, grpc::StatusCode::NOT_FOUND},
                              std::pair{&invalid, grpc::StatusCode::INVALID_ARGUMENT}}) {
    ASSERT_TRUE(reader->WaitForEnd());
    EXPECT_EQ(reader->status()->error_code(), code) << reader->status()->error_message();
    EXPECT_TRUE(reader->results().empty());
  }
  EXPECT_EQ(unknown.status()->error_message(),
            "chainlet \"Nope\" not found in chain \"keda\" environment \"production\"");
}

TEST_F(ExternalScalerServiceTest, UnaryCallsAnswerTheStoredDecision) {
  Open();
  externalscaler::IsActiveResponse active;
  ASSERT_TRUE(stub_->IsActive(Context().get(), Ref("Model"), &active).ok());
  EXPECT_FALSE(active.result());
  Decide("Model", 4);
  ASSERT_TRUE(stub_->IsActive(Context().get(), Ref("Model"), &active).ok());
  EXPECT_TRUE(active.result());
  EXPECT_EQ(Metric("Model"), 4);

  externalscaler::GetMetricSpecResponse spec;
  ASSERT_TRUE(stub_->GetMetricSpec(Context().get(), Ref("Model"), &spec).ok());
  ASSERT_EQ(spec.metricspecs_size(), 1);
  EXPECT_EQ(spec.metricspecs(0).metricname(), "chainscale-keda-production-model");
  EXPECT_EQ(spec.metricspecs(0).targetsize(), 1);
  EXPECT_EQ(spec.metricspecs(0).targetsizefloat(), 1.0);

  // The header works as for the other calls.
  std::unique_ptr<grpc::ClientContext> with_header = Context();
  with_header->AddMetadata("authorization", std::string("Api-Key ") + kKey);
  EXPECT_TRUE(stub_->IsActive(with_header.get(), Ref("Model", ""), &active).ok());
  EXPECT_EQ(stub_->IsActive(Context().get(), Ref("Model", ""), &active).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  const std::string rendered = metrics_.Render();
  EXPECT_NE(rendered.find("chainscale_rpc_requests_total{method=\"IsActive\",code=\"OK\"} 3"),
            std::string::npos)
      << rendered;
  EXPECT_NE(rendered.find(
                "chainscale_rpc_requests_total{method=\"IsActive\",code=\"UNAUTHENTICATED\"} 1"),
            std::string::npos)
      << rendered;
}

TEST_F(ExternalScalerServiceTest, UnavailableUntilTheStoreIsOpen) {
  externalscaler::IsActiveResponse active;
  EXPECT_EQ(stub_->IsActive(Context().get(), Ref("Model"), &active).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  ActivityReader early(*stub_, Ref("Model"));
  ASSERT_TRUE(early.WaitForEnd());
  EXPECT_EQ(early.status()->error_code(), grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace chainscale
