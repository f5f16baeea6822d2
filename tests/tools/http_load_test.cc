// HttpLoad against two real HTTP servers on loopback playing replicas: the resolver (a
// fake, so the test says which addresses exist when) gives one, then both, then none.
// Counts are asserted, not times.
#include "tools/loadgen/http_load.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <atomic>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/http_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chainscale {
namespace {

using ::testing::HasSubstr;

// A replica stand-in: answers 200 (or `status`) and keeps every body it was sent.
class Replica {
 public:
  explicit Replica(int status = 200) {
    HttpServerOptions options;
    options.worker_threads = 4;
    server_ = std::make_unique<HttpServer>(options);
    HttpRoute route;
    route.methods = {"POST"};
    route.path = "/v1/completions";
    route.handler = [this, status](const HttpRequest& r) {
      absl::MutexLock lock(&mu_);
      bodies_.push_back(r.body);
      HttpResponse response;
      response.status = status;
      response.content_type = "application/json";
      response.body = "{}";
      return response;
    };
    server_->Route(std::move(route));
    port_ = server_->Start("127.0.0.1:0").value();
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  std::vector<std::string> bodies() const {
    absl::MutexLock lock(&mu_);
    return bodies_;
  }

 private:
  std::unique_ptr<HttpServer> server_;
  int port_ = 0;
  mutable absl::Mutex mu_;
  std::vector<std::string> bodies_ ABSL_GUARDED_BY(mu_);
};

// `n` requests 10 ms apart, request i with i + 1 context tokens and 2 generated.
std::vector<TraceRequest> Trace(int n) {
  std::vector<TraceRequest> trace;
  for (int i = 0; i < n; ++i) {
    trace.push_back({absl::UnixEpoch() + absl::Milliseconds(10 * i), i + 1, 2});
  }
  return trace;
}

HttpLoadOptions Options() {
  HttpLoadOptions options;
  options.target = "replicas:8000";
  options.resolve_every = absl::ZeroDuration();  // every request: the fake decides
  options.time_scale = 10;                       // 1 ms apart
  options.print_every = absl::ZeroDuration();
  options.max_in_flight = 64;  // more than any test sends: none refused at the client
  options.request_timeout = absl::Seconds(30);
  return options;
}

TEST(HttpLoadTest, RequestsGoRoundRobinOverWhatTheNameResolvesTo) {
  Replica a, b;
  std::atomic<int> calls{0};
  // Requests 0-9: only a; 10-29: a and b; 30-39: nothing (scaled to zero).
  Resolver resolver = [&](const std::string& target) -> absl::StatusOr<std::vector<std::string>> {
    EXPECT_EQ(target, "replicas:8000");
    const int call = calls++;
    if (call < 10) return std::vector<std::string>{a.address()};
    if (call < 30) return std::vector<std::string>{a.address(), b.address()};
    return absl::UnavailableError("cannot resolve replicas");
  };
  std::ostringstream out;
  HttpLoad load(Options(), Trace(40), out, resolver);
  const std::atomic<bool> stop{false};
  const HttpLoadSummary summary = load.Run(stop);
  EXPECT_EQ(summary.sent, 40);
  EXPECT_EQ(summary.ok, 30);
  EXPECT_EQ(summary.errors, (std::map<std::string, int64_t>{{"no_address", 10}}));
  EXPECT_EQ(a.bodies().size(), 20u);  // 10 alone, then every other of 20
  EXPECT_EQ(b.bodies().size(), 10u);
  EXPECT_EQ(summary.addresses_seen, 2);
  EXPECT_GT(summary.p50_ms, 0);
  EXPECT_GE(summary.max_ms, summary.p99_ms);
  EXPECT_THAT(out.str(), HasSubstr("replicas:8000: 2 address(es)"));
  EXPECT_THAT(out.str(), HasSubstr("cannot resolve replicas"));
}

TEST(HttpLoadTest, ABodyCarriesTheTracesTokensAndErrorsAreCountedByKind) {
  Replica busy(503);
  Resolver resolver = [&](const std::string&) -> absl::StatusOr<std::vector<std::string>> {
    return std::vector<std::string>{busy.address(), "127.0.0.1:1"};  // nothing listens on 1
  };
  std::ostringstream out;
  HttpLoad load(Options(), Trace(6), out, resolver);
  const std::atomic<bool> stop{false};
  const HttpLoadSummary summary = load.Run(stop);
  EXPECT_EQ(summary.sent, 6);
  EXPECT_EQ(summary.ok, 0);
  EXPECT_EQ(summary.errors, (std::map<std::string, int64_t>{{"503", 3}, {"UNAVAILABLE", 3}}));
  // Requests 0, 2 and 4 went to the busy one (1, 3 and 5 context tokens as words, 2
  // generated); they arrive in any order.
  std::vector<std::string> prompts;
  for (const std::string& text : busy.bodies()) {
    google::protobuf::Struct body;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(text, &body).ok()) << text;
    EXPECT_EQ(body.fields().at("max_tokens").number_value(), 2);
    EXPECT_EQ(body.fields().at("model").string_value(), "chainscale-replica");
    prompts.push_back(body.fields().at("prompt").string_value());
  }
  std::sort(prompts.begin(), prompts.end());
  EXPECT_THAT(prompts, ::testing::ElementsAre("tok", "tok tok tok", "tok tok tok tok tok"));
  const std::string json = summary.Json();
  EXPECT_THAT(json, HasSubstr("\"sent\":6"));
  EXPECT_THAT(json, HasSubstr("\"503\":3"));
}

TEST(HttpLoadTest, ArrivalsBeyondTheInFlightBoundAreCountedNotSent) {
  // A replica that holds every request until released.
  absl::Mutex mu;
  bool released = false;
  HttpServerOptions server_options;
  server_options.worker_threads = 8;
  HttpServer server(server_options);
  HttpRoute route;
  route.methods = {"POST"};
  route.path = "/v1/completions";
  route.handler = [&](const HttpRequest&) {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(&released));
    return HttpResponse{};
  };
  server.Route(std::move(route));
  const int port = server.Start("127.0.0.1:0").value();
  // Arrivals are handled one after another, each resolving first: the sixth resolution
  // comes after the first five were sent or refused, and releases the held two.
  int calls = 0;
  Resolver resolver = [&](const std::string&) -> absl::StatusOr<std::vector<std::string>> {
    if (++calls < 6) return std::vector<std::string>{absl::StrCat("127.0.0.1:", port)};
    absl::MutexLock lock(&mu);
    released = true;
    return absl::UnavailableError("gone");
  };
  HttpLoadOptions options = Options();
  options.max_in_flight = 2;
  std::ostringstream out;
  HttpLoad load(options, Trace(6), out, resolver);
  const std::atomic<bool> stop{false};
  const HttpLoadSummary summary = load.Run(stop);
  EXPECT_EQ(summary.sent, 6);
  EXPECT_EQ(summary.ok, 2);
  EXPECT_EQ(summary.errors,
            (std::map<std::string, int64_t>{{"client_limit", 3}, {"no_address", 1}}));
}

}  // namespace
}  // namespace chainscale
