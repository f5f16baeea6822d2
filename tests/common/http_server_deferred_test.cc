// HttpServer's asynchronous routes: a request held for as long as its handler wants
// without holding a worker (many more held than workers), answered from any thread with
// its own status and headers, the connection kept alive afterwards; an answer long after
// the request deadline; a responder dropped without an answer (500); Stop with requests
// held (their connections close, later answers are dropped); StopAccepting (no new
// connections, held requests still answered).
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/http_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/raw_connection.h"
#include "tests/testing/wait.h"

namespace chainscale {
namespace {

using ::testing::HasSubstr;
using testing::RawConnection;
using testing::Request;
using testing::WaitFor;

HttpResponse Text(std::string body, int status = 200) {
  HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

// A server with a held route, POST /hold (its responders kept in arrival order, with the
// body each request carried), one that answers from inside the handler, POST /now, one
// whose handler drops its responder, POST /drop, and an ordinary route, GET /echo.
class DeferredTest : public ::testing::Test {
 protected:
  void StartServer(HttpServerOptions options = {}) {
    server_ = std::make_unique<HttpServer>(options);
    HttpRoute hold;
    hold.methods = {"POST"};
    hold.path = "/hold";
    hold.async_handler = [this](const HttpRequest& request, HttpResponder responder) {
      absl::MutexLock lock(&mu_);
      held_.push_back({request.body, std::move(responder)});
    };
    server_->Route(std::move(hold));
    HttpRoute now;
    now.methods = {"POST"};
    now.path = "/now";
    now.async_handler = [](const HttpRequest& request, HttpResponder responder) {
      EXPECT_TRUE(responder.Send(Text("now " + request.body)));
    };
    server_->Route(std::move(now));
    HttpRoute drop;
    drop.methods = {"POST"};
    drop.path = "/drop";
    drop.async_handler = [](const HttpRequest&, HttpResponder) {};
    server_->Route(std::move(drop));
    HttpRoute echo;
    echo.methods = {"GET"};
    echo.path = "/echo";
    echo.handler = [](const HttpRequest& request) { return Text("echo " + request.query); };
    server_->Route(std::move(echo));
    port_ = server_->Start("127.0.0.1:0").value();
  }

  size_t HeldCount() {
    absl::MutexLock lock(&mu_);
    return held_.size();
  }

  struct HeldRequest {
    std::string body;
    HttpResponder responder;
  };

  std::unique_ptr<HttpServer> server_;
  int port_ = 0;
  absl::Mutex mu_;
  std::vector<HeldRequest> held_ ABSL_GUARDED_BY(mu_);
};

TEST_F(DeferredTest, HeldRequestsDoNotHoldWorkers) {
  HttpServerOptions options;
  options.worker_threads = 1;
  StartServer(options);
  constexpr int kHeld = 20;
  std::vector<std::unique_ptr<RawConnection>> clients;
  for (int i = 0; i < kHeld; ++i) {
    clients.push_back(std::make_unique<RawConnection>(port_));
    ASSERT_TRUE(clients.back()->Send(Request("POST", "/hold", absl::StrCat("r", i))));
    // One at a time, so the held list is in client order.
    ASSERT_TRUE(WaitFor([&] { return HeldCount() == static_cast<size_t>(i + 1); }));
  }
  EXPECT_EQ(server_->held_requests(), kHeld);
  // Twenty requests are held and the one worker is free.
  RawConnection other(port_);
  other.Send(Request("GET", "/echo?x"));
  EXPECT_EQ(other.Read().body, "echo x");

  // Answered from this thread, last first, each with its own status and header.
  std::vector<HeldRequest> held;
  {
    absl::MutexLock lock(&mu_);
    held.swap(held_);
  }
  for (int i = kHeld - 1; i >= 0; --i) {
    HttpResponse answer = Text(absl::StrCat("answer ", held[i].body), 201);
    answer.headers.emplace_back("X-Order", absl::StrCat(kHeld - i));
    EXPECT_TRUE(held[i].responder.Send(std::move(answer)));
  }
  for (int i = 0; i < kHeld; ++i) {
    RawConnection::Response r = clients[i]->Read();
    EXPECT_EQ(r.status, 201);
    EXPECT_EQ(r.body, absl::StrCat("answer r", i));
    EXPECT_THAT(r.head, HasSubstr(absl::StrCat("\r\nX-Order: ", kHeld - i)));
  }
  EXPECT_EQ(server_->held_requests(), 0);
  // A responder answers once: the second answer goes nowhere.
  EXPECT_FALSE(held[0].responder.Send(Text("again")));
  // The connections go on to their next request.
  clients[3]->Send(Request("GET", "/echo?after"));
  EXPECT_EQ(clients[3]->Read().body, "echo after");
  clients[3]->Send(Request("POST", "/now", "b"));
  EXPECT_EQ(clients[3]->Read().body, "now b");
}

TEST_F(DeferredTest, AnAnswerMayComeLongAfterTheRequestDeadline) {
  HttpServerOptions options;
  options.request_timeout = absl::Milliseconds(300);
  StartServer(options);
  RawConnection client(port_);
  client.Send(Request("POST", "/hold", "slow"));
  ASSERT_TRUE(WaitFor([&] { return HeldCount() == 1; }));
  // A connection opened after the request was held is closed by its deadline: the held
  // request has outlived its own.
  RawConnection idle(port_);
  ASSERT_TRUE(idle.ClosedWithin(absl::Seconds(10)));
  HttpResponder responder;
  {
    absl::MutexLock lock(&mu_);
    responder = std::move(held_[0].responder);
  }
  EXPECT_TRUE(responder.Send(Text("late")));
  RawConnection::Response r = client.Read();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "late");
}

TEST_F(DeferredTest, ADroppedResponderAnswers500) {
  StartServer();
  RawConnection client(port_);
  client.Send(Request("POST", "/drop", "x"));
  RawConnection::Response r = client.Read();
  EXPECT_EQ(r.status, 500);
  EXPECT_THAT(r.body, HasSubstr("\"code\":\"INTERNAL\""));
  EXPECT_THAT(r.body, HasSubstr("gave no answer"));
  EXPECT_EQ(server_->held_requests(), 0);
}

TEST_F(DeferredTest, StopClosesHeldConnectionsAndLaterAnswersAreDropped) {
  StartServer();
  std::vector<std::unique_ptr<RawConnection>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<RawConnection>(port_));
    clients.back()->Send(Request("POST", "/hold", "x"));
  }
  ASSERT_TRUE(WaitFor([&] { return HeldCount() == 3; }));
  server_->Stop();  // returns although three requests are held
  for (auto& client : clients) EXPECT_TRUE(client->ClosedWithin(absl::Seconds(10)));
  EXPECT_EQ(server_->held_requests(), 0);
  absl::MutexLock lock(&mu_);
  for (HeldRequest& h : held_) EXPECT_FALSE(h.responder.Send(Text("too late")));
}

TEST_F(DeferredTest, StopAcceptingKeepsHeldRequests) {
  StartServer();
  RawConnection client(port_);
  client.Send(Request("POST", "/hold", "x"));
  ASSERT_TRUE(WaitFor([&] { return HeldCount() == 1; }));
  server_->StopAccepting();
  RawConnection refused(port_);
  EXPECT_FALSE(refused.connected());
  {
    absl::MutexLock lock(&mu_);
    EXPECT_TRUE(held_[0].responder.Send(Text("finished")));
  }
  RawConnection::Response r = client.Read();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "finished");
  server_->StopAccepting();  // idempotent
}

TEST_F(DeferredTest, AwaitAnsweredWaitsForHeldAnswersToBeWritten) {
  StartServer();
  RawConnection a(port_);
  RawConnection b(port_);
  a.Send(Request("POST", "/hold", "a"));
  b.Send(Request("POST", "/hold", "b"));
  ASSERT_TRUE(WaitFor([&] { return HeldCount() == 2; }));
  server_->StopAccepting();
  EXPECT_FALSE(server_->AwaitAnswered(absl::ZeroDuration()));
  std::vector<HeldRequest> held;
  {
    absl::MutexLock lock(&mu_);
    held.swap(held_);
  }
  EXPECT_TRUE(held[0].responder.Send(Text("done " + held[0].body)));
  EXPECT_FALSE(server_->AwaitAnswered(absl::ZeroDuration())) << "one is still held";
  EXPECT_TRUE(held[1].responder.Send(Text("done " + held[1].body)));
  EXPECT_TRUE(server_->AwaitAnswered(absl::Seconds(10)));
  // Both answers were written before AwaitAnswered returned: Stop does not cut them off.
  server_->Stop();
  EXPECT_EQ(a.Read().body, "done a");
  EXPECT_EQ(b.Read().body, "done b");
}

}  // namespace
}  // namespace chainscale
