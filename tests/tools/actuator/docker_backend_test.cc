// The Docker backend against a fake Docker Engine API that the test serves on a unix
// socket: the exact requests (method, path and query, JSON body) are checked.
#include "tools/actuator/docker_backend.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/json_print.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace chainscale {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using local = net::local::stream_protocol;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct EngineCall {
  std::string method;
  std::string target;
  std::string body;  // JSON printed with sorted keys; empty when none was sent
};

struct EngineAnswer {
  int status = 200;
  std::string body;
};

// Any JSON text printed the same way every time (object keys sorted, no spaces), so that
// bodies compare as text.
std::string Canonical(const std::string& json) {
  if (json.empty()) return "";
  google::protobuf::Value value;
  if (!google::protobuf::util::JsonStringToMessage(json, &value).ok()) return "<not JSON> " + json;
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  if (!PrintJson(value, options, &out).ok()) return "<unprintable> " + json;
  return out;
}

// A Docker Engine API stand-in: one request per connection (as the backend sends them),
// answered by `handler`; every request recorded.
class FakeDockerEngine {
 public:
  using Handler = std::function<EngineAnswer(const EngineCall&)>;

  FakeDockerEngine(std::string path, Handler handler)
      : path_(std::move(path)), handler_(std::move(handler)), acceptor_(io_) {
    acceptor_.open();
    acceptor_.bind(local::endpoint(path_));
    acceptor_.listen();
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeDockerEngine() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    // Wakes the accept.
    local::socket waker(io_);
    beast::error_code ignored;
    waker.connect(local::endpoint(path_), ignored);
    thread_.join();
  }

  std::vector<EngineCall> calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  std::vector<std::string> requests() const {
    std::vector<std::string> lines;
    for (const EngineCall& call : calls()) lines.push_back(call.method + " " + call.target);
    return lines;
  }
  void Clear() {
    absl::MutexLock lock(&mu_);
    calls_.clear();
  }

 private:
  void Serve() {
    while (true) {
      local::socket socket(io_);
      beast::error_code ec;
      acceptor_.accept(socket, ec);
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) return;
      }
      if (ec) continue;
      beast::flat_buffer buffer;
      http::request<http::string_body> request;
      http::read(socket, buffer, request, ec);
      if (ec) continue;
      EngineCall call{std::string(request.method_string()), std::string(request.target()),
                      Canonical(request.body())};
      {
        absl::MutexLock lock(&mu_);
        calls_.push_back(call);
      }
      const EngineAnswer answer = handler_(call);
      http::response<http::string_body> response(static_cast<http::status>(answer.status), 11);
      response.set(http::field::content_type, "application/json");
      response.body() = answer.body;
      response.keep_alive(false);
      response.prepare_payload();
      http::write(socket, response, ec);
      socket.shutdown(local::socket::shutdown_both, ec);
    }
  }

  const std::string path_;
  const Handler handler_;
  net::io_context io_;
  local::acceptor acceptor_;
  mutable absl::Mutex mu_;
  std::vector<EngineCall> calls_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

const std::string kCompose(64, 'a');
const std::string kOwn(64, 'b');
const std::string kExited(64, 'c');
const std::string kOther(64, 'd');
const std::string kNew(64, 'e');

// GET /containers/json?all=true&filters={"label":["com.docker.compose.service=replica"]}
const std::string kListTarget =
    "/v1.41/containers/json?all=true&filters="
    "%7B%22label%22%3A%5B%22com.docker.compose.service%3Dreplica%22%5D%7D";

// The service's containers: the one Compose made, one clone of this target running and one
// exited, and a clone another target made of the same service.
std::string ListAnswer() {
  return absl::StrCat(R"([
  {"Id": ")", kCompose, R"(", "Names": ["/demo_replica_1"], "Created": 1700000000,
   "State": "running", "Labels": {"com.docker.compose.service": "replica"}},
  {"Id": ")", kExited, R"(", "Names": ["/demo-production-HelloWorld-3"], "Created": 1700000200,
   "State": "exited", "Labels": {"com.docker.compose.service": "replica",
   "dev.chainscale.target": "demo/production/HelloWorld", "dev.chainscale.serial": "3"}},
  {"Id": ")", kOwn, R"(", "Names": ["/demo-production-HelloWorld-2"], "Created": 1700000100,
   "State": "running", "Labels": {"com.docker.compose.service": "replica",
   "dev.chainscale.target": "demo/production/HelloWorld", "dev.chainscale.serial": "2"}},
  {"Id": ")", kOther, R"(", "Names": ["/demo-staging-HelloWorld-9"], "Created": 1700000300,
   "State": "running", "Labels": {"com.docker.compose.service": "replica",
   "dev.chainscale.target": "demo/staging/HelloWorld", "dev.chainscale.serial": "9"}}
])");
}

// What GET /containers/{id}/json says of the Compose container (trimmed to what matters).
std::string InspectAnswer() {
  return absl::StrCat(R"({
  "Id": ")", kCompose, R"(", "Name": "/demo_replica_1", "Created": "2023-11-14T22:13:20.1Z",
  "State": {"Status": "running", "Running": true},
  "Config": {
    "Hostname": "aaaaaaaaaaaa", "Domainname": "", "User": "",
    "Env": ["MODEL=llm", "PATH=/usr/bin"],
    "Cmd": ["chainscale-replica", "--http_listen=0.0.0.0:8000"],
    "Image": "chainscale:local",
    "Labels": {"com.docker.compose.project": "demo", "com.docker.compose.service": "replica"},
    "ExposedPorts": {"8000/tcp": {}},
    "MacAddress": "02:42:ac:11:00:02",
    "StopSignal": "SIGTERM"
  },
  "HostConfig": {
    "NetworkMode": "demo_default",
    "PortBindings": {"8000/tcp": [{"HostIp": "", "HostPort": "18000"}]},
    "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0}
  },
  "NetworkSettings": {"Networks": {
    "demo_backend": {"Aliases": ["replica", "aaaaaaaaaaaa", "llm"], "NetworkID": "n2"},
    "demo_default": {"Aliases": ["replica", "aaaaaaaaaaaa"], "NetworkID": "n1"}
  }}
})");
}

std::string ShortSocketPath() {
  static int count = 0;
  return absl::StrCat(::testing::TempDir(), "cs-docker-", getpid(), "-", ++count, ".sock");
}

class DockerBackendTest : public ::testing::Test {
 protected:
  ~DockerBackendTest() override {
    engine_.reset();
    unlink(socket_.c_str());
  }
  DockerBackendTest() {
    engine_ = std::make_unique<FakeDockerEngine>(socket_, [this](const EngineCall& call) {
      return Answer(call);
    });
  }

  EngineAnswer Answer(const EngineCall& call) {
    if (call.method == "GET" && call.target == kListTarget) return {200, ListAnswer()};
    if (call.method == "GET" && call.target == "/v1.41/containers/" + kCompose + "/json") {
      return {200, InspectAnswer()};
    }
    if (call.method == "POST" && absl::StartsWith(call.target, "/v1.41/containers/create")) {
      if (!create_error.empty()) return {404, R"({"message": ")" + create_error + "\"}"};
      return {201, R"({"Id": ")" + kNew + R"(", "Warnings": []})"};
    }
    if (call.method == "POST" && absl::StartsWith(call.target, "/v1.41/networks/")) {
      return {200, ""};
    }
    if (call.method == "POST" || call.method == "DELETE") return {204, ""};
    return {404, R"({"message": "no such route in the fake"})"};
  }

  std::unique_ptr<DockerBackend> Make(const std::string& template_container = "") {
    DockerBackendOptions options;
    options.target = "demo/production/HelloWorld";
    options.name_prefix = "demo-production-HelloWorld";
    options.docker_host = "unix://" + socket_;
    options.label = "com.docker.compose.service=replica";
    options.template_container = template_container;
    absl::StatusOr<std::unique_ptr<DockerBackend>> backend = DockerBackend::Create(options);
    EXPECT_TRUE(backend.ok()) << backend.status();
    return backend.ok() ? *std::move(backend) : nullptr;
  }

  testing::ScopedTempDir dir_;
  // A socket path must fit in 108 bytes: not under the temporary directory, named after
  // the test.
  const std::string socket_ = ShortSocketPath();
  std::string create_error;
  std::unique_ptr<FakeDockerEngine> engine_;
};

TEST_F(DockerBackendTest, ListsTheServicesRunningContainersAndRemovesItsExitedOnes) {
  std::unique_ptr<DockerBackend> backend = Make();
  ASSERT_NE(backend, nullptr);
  absl::StatusOr<std::vector<Replica>> replicas = backend->List();
  ASSERT_TRUE(replicas.ok()) << replicas.status();
  ASSERT_EQ(replicas->size(), 2u);
  // Compose's container first (the oldest), then this target's clone; another target's
  // clone is not this target's replica.
  EXPECT_EQ((*replicas)[0].id, kCompose);
  EXPECT_EQ((*replicas)[0].serial, 0);
  EXPECT_EQ((*replicas)[0].description, "container demo_replica_1 (aaaaaaaaaaaa)");
  EXPECT_EQ((*replicas)[1].id, kOwn);
  EXPECT_EQ((*replicas)[1].serial, 2);
  EXPECT_THAT(engine_->requests(),
              ElementsAre("GET " + kListTarget, "DELETE /v1.41/containers/" + kExited));
}

TEST_F(DockerBackendTest, StartClonesTheServiceContainerWithItsNetworksAndAliases) {
  std::unique_ptr<DockerBackend> backend = Make();
  ASSERT_NE(backend, nullptr);
  ASSERT_TRUE(backend->List().ok());
  engine_->Clear();

  absl::StatusOr<Replica> replica = backend->Start();
  ASSERT_TRUE(replica.ok()) << replica.status();
  EXPECT_EQ(replica->id, kNew);
  EXPECT_EQ(replica->serial, 4);  // after the highest serial seen, the exited one's
  EXPECT_EQ(replica->description, "container demo-production-HelloWorld-4 (eeeeeeeeeeee)");

  const std::vector<EngineCall> calls = engine_->calls();
  ASSERT_EQ(calls.size(), 4u) << ::testing::PrintToString(engine_->requests());
  EXPECT_EQ(calls[0].method + " " + calls[0].target,
            "GET /v1.41/containers/" + kCompose + "/json");
  EXPECT_EQ(calls[1].method + " " + calls[1].target,
            "POST /v1.41/containers/create?name=demo-production-HelloWorld-4");
  // The template's configuration without its host name, MAC address and published host
  // ports; the labels that make it this target's; the first network with the service's
  // aliases (not the template's own id).
  EXPECT_EQ(calls[1].body, Canonical(R"({
    "Domainname": "", "User": "",
    "Env": ["MODEL=llm", "PATH=/usr/bin"],
    "Cmd": ["chainscale-replica", "--http_listen=0.0.0.0:8000"],
    "Image": "chainscale:local",
    "Labels": {"com.docker.compose.project": "demo", "com.docker.compose.service": "replica",
               "dev.chainscale.serial": "4", "dev.chainscale.target": "demo/production/HelloWorld"},
    "ExposedPorts": {"8000/tcp": {}},
    "StopSignal": "SIGTERM",
    "HostConfig": {"NetworkMode": "demo_default",
                   "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0}},
    "NetworkingConfig": {"EndpointsConfig": {"demo_default": {"Aliases": ["replica"]}}}
  })"));
  EXPECT_EQ(calls[2].method + " " + calls[2].target, "POST /v1.41/networks/demo_backend/connect");
  EXPECT_EQ(calls[2].body, Canonical(R"({"Container": ")" + kNew +
                                     R"(", "EndpointConfig": {"Aliases": ["replica", "llm"]}})"));
  EXPECT_EQ(calls[3].method + " " + calls[3].target,
            "POST /v1.41/containers/" + kNew + "/start");
  EXPECT_EQ(calls[3].body, "");
}

TEST_F(DockerBackendTest, StartClonesANamedTemplate) {
  std::unique_ptr<DockerBackend> backend = Make("llm-template");
  ASSERT_NE(backend, nullptr);
  ASSERT_TRUE(backend->List().ok());
  engine_->Clear();
  // The fake knows no container of that name: the daemon's 404 comes back.
  absl::StatusOr<Replica> replica = backend->Start();
  EXPECT_EQ(replica.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(engine_->requests(), ElementsAre("GET /v1.41/containers/llm-template/json"));
}

TEST_F(DockerBackendTest, AFailedCreateIsReportedWithTheDaemonsMessage) {
  create_error = "No such image: chainscale:local";
  std::unique_ptr<DockerBackend> backend = Make();
  ASSERT_NE(backend, nullptr);
  ASSERT_TRUE(backend->List().ok());
  absl::StatusOr<Replica> replica = backend->Start();
  EXPECT_EQ(replica.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(replica.status().message(), HasSubstr("No such image: chainscale:local"));
}

TEST_F(DockerBackendTest, StopStopsWithTheDrainPeriodThenRemovesItsOwnContainers) {
  std::unique_ptr<DockerBackend> backend = Make();
  ASSERT_NE(backend, nullptr);
  absl::StatusOr<std::vector<Replica>> replicas = backend->List();
  ASSERT_TRUE(replicas.ok());
  engine_->Clear();
  ASSERT_TRUE(backend->Stop((*replicas)[1], absl::Seconds(30)).ok());
  ASSERT_TRUE(testing::WaitFor([&] { return engine_->calls().size() == 2; }));
  EXPECT_THAT(engine_->requests(), ElementsAre("POST /v1.41/containers/" + kOwn + "/stop?t=30",
                                               "DELETE /v1.41/containers/" + kOwn));

  // Compose's container is stopped and kept: it is what later clones are made from.
  engine_->Clear();
  ASSERT_TRUE(backend->Stop((*replicas)[0], absl::Milliseconds(1500)).ok());
  backend.reset();  // waits for the stops under way
  EXPECT_THAT(engine_->requests(),
              ElementsAre("POST /v1.41/containers/" + kCompose + "/stop?t=2"));
}

TEST_F(DockerBackendTest, KillRemovesByForce) {
  std::unique_ptr<DockerBackend> backend = Make();
  ASSERT_NE(backend, nullptr);
  absl::StatusOr<std::vector<Replica>> replicas = backend->List();
  ASSERT_TRUE(replicas.ok());
  engine_->Clear();
  ASSERT_TRUE(backend->Kill((*replicas)[1]).ok());
  EXPECT_THAT(engine_->requests(),
              ElementsAre("DELETE /v1.41/containers/" + kOwn + "?force=true"));
}

TEST_F(DockerBackendTest, ADaemonThatCannotBeReachedIsUnavailable) {
  DockerBackendOptions options;
  options.target = "demo/production/HelloWorld";
  options.name_prefix = "demo-production-HelloWorld";
  options.docker_host = "unix://" + dir_.str() + "/no-daemon.sock";
  options.label = "com.docker.compose.service=replica";
  absl::StatusOr<std::unique_ptr<DockerBackend>> backend = DockerBackend::Create(options);
  ASSERT_TRUE(backend.ok());
  absl::StatusOr<std::vector<Replica>> replicas = (*backend)->List();
  EXPECT_EQ(replicas.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(replicas.status().message(), HasSubstr("no-daemon.sock"));
}

TEST_F(DockerBackendTest, RefusesHostsThatAreNotUnixSockets) {
  DockerBackendOptions options;
  options.target = "demo/production/HelloWorld";
  options.label = "com.docker.compose.service=replica";
  options.docker_host = "tcp://127.0.0.1:2375";
  EXPECT_EQ(DockerBackend::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.docker_host = "unix:///var/run/docker.sock";
  options.label = "no-equals-sign";
  EXPECT_EQ(DockerBackend::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace chainscale
