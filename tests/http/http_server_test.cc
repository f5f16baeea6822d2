// HttpServer over raw loopback sockets: routes and methods, the body limit (chunked too)
// before admission and admission before the body, the whole-request deadline, the
// connection limit, pipelining, the inline route while workers are busy, malformed
// framing; and HttpCall over TCP and a unix socket.
#include "common/http_server.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/http_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/raw_connection.h"
#include "tests/testing/temp_dir.h"

namespace chainscale {
namespace {

using ::testing::HasSubstr;
using testing::RawConnection;
using testing::Request;

std::string Chunk(const std::string& data) {
  return absl::StrCat(absl::Hex(data.size()), "\r\n", data, "\r\n");
}

HttpRoute MakeRoute(std::vector<std::string> methods, std::string path, HttpHandler handler,
                    bool inline_handler = false) {
  HttpRoute route;
  route.methods = std::move(methods);
  route.path = std::move(path);
  route.handler = std::move(handler);
  route.inline_handler = inline_handler;
  return route;
}

HttpResponse Text(std::string body) {
  HttpResponse response;
  response.body = std::move(body);
  return response;
}

class HttpServerTest : public ::testing::Test {
 protected:
  // Routes: GET /hello (inline), POST /echo, and the prefix /v1/ for every method, whose
  // admission refuses requests without "X-Key: ok" and counts its calls.
  void StartServer(HttpServerOptions options = {}) {
    server_ = std::make_unique<HttpServer>(std::move(options));
    server_->Route(MakeRoute({"GET"}, "/hello",
                             [](const HttpRequest&) { return Text("hi\n"); },
                             /*inline_handler=*/true));
    server_->Route(MakeRoute({"POST"}, "/echo", [this](const HttpRequest& r) {
      handled_.fetch_add(1);
      return Text(absl::StrCat(r.method, " ", r.path, "?", r.query, " ", r.body));
    }));
    HttpRoute v1 = MakeRoute({}, "/v1/", [this](const HttpRequest& r) {
      handled_.fetch_add(1);
      return Text(absl::StrCat(r.method, " ", r.path, " ", r.body.size()));
    });
    v1.prefix = true;
    v1.admission = [this](const HttpRequest& head) -> std::optional<HttpResponse> {
      admitted_.fetch_add(1);
      if (head.Header("x-key") == "ok") return std::nullopt;
      return HttpError(401, "no key");
    };
    server_->Route(std::move(v1));
    port_ = server_->Start("127.0.0.1:0").value();
  }

  std::unique_ptr<HttpServer> server_;
  int port_ = 0;
  std::atomic<int> admitted_{0};
  std::atomic<int> handled_{0};
};

TEST_F(HttpServerTest, RoutesMethodsAndErrors) {
  StartServer();
  RawConnection c(port_);
  c.Send(Request("GET", "/hello"));
  RawConnection::Response r = c.Read();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hi\n");
  c.Send(Request("POST", "/echo?x=1", "body"));
  EXPECT_EQ(c.Read().body, "POST /echo?x=1 body");
  c.Send(Request("GET", "/nowhere"));
  r = c.Read();
  EXPECT_EQ(r.status, 404);
  EXPECT_THAT(r.body, HasSubstr("\"code\":\"NOT_FOUND\""));
  EXPECT_THAT(r.body, HasSubstr("\"message\":\"no such path: /nowhere\""));
  EXPECT_THAT(r.head, HasSubstr("\r\nContent-Type: application/json"));
  c.Send(Request("DELETE", "/hello"));
  r = c.Read();
  EXPECT_EQ(r.status, 405);
  EXPECT_THAT(r.head, HasSubstr("\r\nAllow: GET, HEAD, OPTIONS"));
  c.Send(Request("OPTIONS", "/echo"));
  r = c.Read();
  EXPECT_EQ(r.status, 204);
  EXPECT_THAT(r.head, HasSubstr("\r\nAllow: OPTIONS, POST"));
  c.Send(Request("HEAD", "/hello"));
  r = c.Read(absl::Seconds(10), true, /*head=*/true);  // the GET body's length, no body
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.head, HasSubstr("Content-Length: 3"));
  c.Send(Request("GET", "/hello"));
  EXPECT_EQ(c.Read().body, "hi\n") << "the HEAD answer carried no body bytes";
}

TEST_F(HttpServerTest, BodyLimitComesBeforeAdmissionAndAdmissionBeforeTheBody) {
  HttpServerOptions options;
  options.max_body_bytes = 1000;
  StartServer(options);
  {
    // Announced too large: 413 at once, admission never asked, the body never read.
    RawConnection c(port_);
    c.Send(absl::StrCat("PATCH /v1/x HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\n\r\n"));
    RawConnection::Response r = c.Read();
    EXPECT_EQ(r.status, 413);
    EXPECT_THAT(r.body, HasSubstr("larger than 1000 bytes"));
    EXPECT_EQ(admitted_.load(), 0);
  }
  {
    // Without the key: refused on the headers alone, though the body never comes.
    RawConnection c(port_);
    c.Send("PATCH /v1/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    RawConnection::Response r = c.Read();
    EXPECT_EQ(r.status, 401);
    EXPECT_EQ(admitted_.load(), 1);
    EXPECT_TRUE(c.ClosedWithin(absl::Seconds(10))) << "a refused upload's connection closes";
  }
  {
    // With the key, a chunked body that grows past the limit: 413, never handled.
    RawConnection c(port_);
    c.Send("PATCH /v1/x HTTP/1.1\r\nHost: t\r\nX-Key: ok\r\nTransfer-Encoding: chunked\r\n\r\n");
    bool sending = true;
    for (int i = 0; i < 20 && sending; ++i) sending = c.Send(Chunk(std::string(100, 'x')));
    RawConnection::Response r = c.Read();
    EXPECT_EQ(r.status, 413);
    EXPECT_EQ(handled_.load(), 0);
  }
  {
    // Within the limit it is read and handled.
    RawConnection c(port_);
    c.Send(absl::StrCat("PATCH /v1/x HTTP/1.1\r\nHost: t\r\nX-Key: ok\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n",
                        Chunk(std::string(600, 'x')), Chunk(std::string(400, 'y')), "0\r\n\r\n"));
    RawConnection::Response r = c.Read();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "PATCH /v1/x 1000");
  }
}

TEST_F(HttpServerTest, ExpectContinueIsAnsweredAfterAdmission) {
  StartServer();
  RawConnection c(port_);
  c.Send("POST /v1/y HTTP/1.1\r\nHost: t\r\nX-Key: ok\r\nContent-Length: 4\r\n"
         "Expect: 100-continue\r\n\r\n");
  EXPECT_EQ(c.Read(absl::Seconds(10), /*skip_continue=*/false).status, 100);
  c.Send("abcd");
  RawConnection::Response r = c.Read();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "POST /v1/y 4");
}

TEST_F(HttpServerTest, MalformedFramingIsRefused) {
  StartServer();
  struct Case {
    std::string request;
    int status;
  };
  const std::vector<Case> cases = {
      {"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", 400},
      {"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
       "4\r\nabcd\r\n0\r\n\r\n",
       400},
      {"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd", 400},
      {"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\nabcd", 501},
      {"GET /hello HTTP/1.1\r\nHost: t\r\nX: " + std::string(20000, 'x') + "\r\n\r\n", 431},
      {"NOT HTTP AT ALL\r\n\r\n", 400},
  };
  for (const Case& test : cases) {
    RawConnection c(port_);
    c.Send(test.request);
    EXPECT_EQ(c.Read().status, test.status) << test.request.substr(0, 120);
    EXPECT_TRUE(c.ClosedWithin(absl::Seconds(10))) << test.request.substr(0, 120);
  }
  EXPECT_EQ(handled_.load(), 0);
}

TEST_F(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  StartServer();
  RawConnection c(port_);
  std::string stream;
  for (int i = 0; i < 10; ++i) stream += Request("POST", absl::StrCat("/echo?n=", i), "b");
  stream += Request("GET", "/hello");
  c.Send(stream);
  for (int i = 0; i < 10; ++i) {
    RawConnection::Response r = c.Read();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, absl::StrCat("POST /echo?n=", i, " b"));
  }
  EXPECT_EQ(c.Read().body, "hi\n");
}

TEST_F(HttpServerTest, AWholeRequestMustArriveInTime) {
  HttpServerOptions options;
  options.request_timeout = absl::Milliseconds(500);
  StartServer(options);
  RawConnection slow(port_);
  slow.Send("GET /hello HTTP/1.1\r\n");
  // Headers trickle in, each well within any per-read timeout; the request as a whole
  // does not make its deadline, so the server closes the connection.
  bool closed = false;
  int lines = 0;
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (!closed && absl::Now() < give_up) {
    closed = !slow.Send("X-Slow: 1\r\n") || slow.ClosedWithin(absl::Milliseconds(100));
    ++lines;
  }
  EXPECT_TRUE(closed) << "still open after " << lines << " header lines";
  // An idle keep-alive connection is closed after the same time.
  RawConnection idle(port_);
  idle.Send(Request("GET", "/hello"));
  EXPECT_EQ(idle.Read().status, 200);
  EXPECT_TRUE(idle.ClosedWithin(absl::Seconds(10)));
}

TEST_F(HttpServerTest, ConnectionsAreBoundedAndPlacesComeBack) {
  HttpServerOptions options;
  options.max_connections = 3;
  StartServer(options);
  std::vector<std::unique_ptr<RawConnection>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(std::make_unique<RawConnection>(port_));
    held.back()->Send(Request("GET", "/hello"));
    ASSERT_EQ(held.back()->Read().status, 200);
  }
  RawConnection extra(port_);
  extra.Send(Request("GET", "/hello"));
  RawConnection::Response r = extra.Read();
  EXPECT_EQ(r.status, 503);
  EXPECT_THAT(r.body, HasSubstr("too many connections"));
  held.pop_back();
  // The place frees once the server has seen the close.
  int status = 0;
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (status != 200 && absl::Now() < give_up) {
    RawConnection again(port_);
    again.Send(Request("GET", "/hello"));
    status = again.Read().status;
  }
  EXPECT_EQ(status, 200);
}

TEST_F(HttpServerTest, InlineRoutesAnswerWhileEveryWorkerIsBusy) {
  HttpServerOptions options;
  options.worker_threads = 1;
  server_ = std::make_unique<HttpServer>(options);
  absl::Notification release;
  std::atomic<bool> blocked{false};
  server_->Route(MakeRoute({"GET"}, "/block", [&](const HttpRequest&) {
    blocked = true;
    release.WaitForNotificationWithTimeout(absl::Seconds(30));
    return Text("done\n");
  }));
  server_->Route(MakeRoute({"GET"}, "/healthz", [](const HttpRequest&) { return Text("ok\n"); },
                           /*inline_handler=*/true));
  port_ = server_->Start("127.0.0.1:0").value();
  RawConnection blocker(port_);
  blocker.Send(Request("GET", "/block"));
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (!blocked && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_TRUE(blocked);
  RawConnection health(port_);
  health.Send(Request("GET", "/healthz"));
  EXPECT_EQ(health.Read(absl::Seconds(5)).body, "ok\n");
  release.Notify();
  EXPECT_EQ(blocker.Read().body, "done\n");
}

TEST_F(HttpServerTest, HttpCallSpeaksToTheServer) {
  StartServer();
  absl::StatusOr<HttpClientResponse> r = HttpCall(
      absl::StrCat("127.0.0.1:", port_), {"POST", "/echo?a=b", {{"X-Key", "ok"}}, "payload"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "POST /echo?a=b payload");
  EXPECT_EQ(r->Header("content-type"), "text/plain; charset=utf-8");
  r = HttpCall(absl::StrCat("127.0.0.1:", port_), {"HEAD", "/hello", {}, ""});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "");
  server_->Stop();
  EXPECT_EQ(HttpCall(absl::StrCat("127.0.0.1:", port_), {"GET", "/hello", {}, ""}).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(HttpCallTest, SpeaksOverAUnixSocket) {
  testing::ScopedTempDir dir;
  const std::string path = dir.str() + "/http.sock";
  const int listener = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof(address.sun_path), "%s", path.c_str());
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  std::string received;
  std::thread server([&] {
    const int fd = ::accept(listener, nullptr, nullptr);
    char buffer[4096];
    while (received.find("\r\n\r\n") == std::string::npos) {
      const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
      if (n <= 0) break;
      received.append(buffer, static_cast<size_t>(n));
    }
    const std::string answer = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n[\"c1\"]";
    (void)::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL);
    ::close(fd);
  });
  absl::StatusOr<HttpClientResponse> r =
      HttpCall("unix:" + path, {"GET", "/containers/json?all=1", {}, ""});
  server.join();
  ::close(listener);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "[\"c1\"]");
  EXPECT_THAT(received, HasSubstr("GET /containers/json?all=1 HTTP/1.1\r\n"));
}

TEST(HttpCallTest, ErrorsAreStatuses) {
  EXPECT_EQ(HttpCall("unix:/nonexistent/socket", {}).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(HttpCall("no-port", {}).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace chainscale

namespace chainscale {
namespace {

// With reuse_port, servers share one port and every connection reaches one of them; a
// server without it cannot bind a port already taken.
TEST(HttpServerReusePortTest, ServersShareAPortAndConnectionsReachEach) {
  std::vector<std::unique_ptr<HttpServer>> servers;
  std::atomic<int> answered[2] = {0, 0};
  int port = 0;
  for (int i = 0; i < 2; ++i) {
    HttpServerOptions options;
    options.reuse_port = true;
    servers.push_back(std::make_unique<HttpServer>(options));
    servers.back()->Route({{"GET"}, "/who", false, [&answered, i](const HttpRequest&) {
                             ++answered[i];
                             HttpResponse response;
                             response.body = std::to_string(i);
                             return response;
                           }});
    absl::StatusOr<int> bound = servers.back()->Start(absl::StrCat("127.0.0.1:", port));
    ASSERT_TRUE(bound.ok()) << bound.status();
    if (i == 0) port = *bound;
    EXPECT_EQ(*bound, port);
  }
  // The kernel picks by each connection's address hash: 200 connections reach both.
  for (int c = 0; c < 200; ++c) {
    HttpClientRequest request;
    request.target = "/who";
    absl::StatusOr<HttpClientResponse> response =
        HttpCall(absl::StrCat("127.0.0.1:", port), request);
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->status, 200);
  }
  std::cout << "200 connections: " << answered[0] << " to one server, " << answered[1]
            << " to the other\n";
  EXPECT_EQ(answered[0] + answered[1], 200);
  EXPECT_GT(answered[0], 0);
  EXPECT_GT(answered[1], 0);

  HttpServer plain;
  absl::StatusOr<int> refused = plain.Start(absl::StrCat("127.0.0.1:", port));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace chainscale
