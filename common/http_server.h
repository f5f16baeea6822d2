// HttpServer: the HTTP port of a chainscale process (--http_listen): /metrics and
// /healthz everywhere, the REST gateway and the console on the control plane, and any
// other chainscale binary that needs to serve HTTP. Components register routes on
// chainscale's own request and response types; the library underneath (Boost.Beast over
// Boost.Asio, OpenSSL for HTTPS) never shows.
//
// Built for hostile clients (DESIGN §14):
// - a body over `max_body_bytes` (chunked included) is refused with 413 as soon as that
//   is known, before a route's admission check runs or the body is read whole;
// - a route's admission check (the API key, the rate limit) runs once the headers are in,
//   before the body is read, so unauthenticated bodies are never buffered;
// - a whole request, headers and body, must arrive within `request_timeout` (408);
//   an idle keep-alive connection is closed after the same time;
// - connections are asynchronous and bounded (`max_connections`, 503 beyond), so slow
//   clients hold no thread; handlers run on a worker pool, and routes marked `inline` (a
//   health check) answer on the I/O threads even while every worker is busy;
// - an asynchronous route's handler returns at once with the request held, and answers
//   it later from any thread (HttpResponder): a held request costs its connection, not a
//   thread, so how many are held is bounded by `max_connections`, not by the workers;
// - pipelined requests are answered one by one, in order;
// - with a certificate the port speaks only HTTPS; a plaintext request gets a 400 that
//   says so, and the connection is closed.
#ifndef CHAINSCALE_COMMON_HTTP_SERVER_H_
#define CHAINSCALE_COMMON_HTTP_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace chainscale {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// The first value of header `name` (compared case-insensitively); empty when absent.
std::string HttpHeaderValue(const HttpHeaders& headers, absl::string_view name);

struct HttpRequest {
  std::string method;  // as sent: "GET", "PATCH", even "BREW"
  std::string path;    // the target up to '?', not decoded
  std::string query;   // after '?', not decoded
  HttpHeaders headers;
  std::string body;            // empty while a route's admission check runs
  std::string client_address;  // the peer's IP address, without the port

  std::string Header(absl::string_view name) const { return HttpHeaderValue(headers, name); }
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  HttpHeaders headers;  // more headers (Allow, Retry-After, ...)
  std::string body;
};

namespace http_internal {
class HeldRequests;
}  // namespace http_internal

// Answers one request of an asynchronous route, from any thread, at any time. Only the
// first Send counts. A responder destroyed without answering answers 500, so a request is
// never left hanging by a handler that forgot it. Once the server has stopped (its
// connections are closed), Send does nothing.
class HttpResponder {
 public:
  HttpResponder() = default;  // answers nothing
  HttpResponder(HttpResponder&& other) noexcept;
  HttpResponder& operator=(HttpResponder&& other) noexcept;
  ~HttpResponder();

  // Starts writing `response` on the request's connection; false when this responder has
  // answered already, was moved from, or its server has stopped. Never blocks.
  bool Send(HttpResponse response);

 private:
  friend class HttpServer;
  HttpResponder(std::shared_ptr<http_internal::HeldRequests> held, uint64_t id)
      : held_(std::move(held)), id_(id) {}

  std::shared_ptr<http_internal::HeldRequests> held_;
  uint64_t id_ = 0;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;
// The request is valid during the call only; the handler keeps what it needs and the
// responder, and returns without waiting.
using HttpAsyncHandler = std::function<void(const HttpRequest&, HttpResponder)>;
// Looks at a request before its body is read: a response refuses it (the body is then
// never read, and the connection is closed after the answer); nothing lets it through.
using HttpAdmission = std::function<std::optional<HttpResponse>(const HttpRequest& head)>;

struct HttpRoute {
  // The methods served. HEAD is served wherever GET is, OPTIONS everywhere (204 with
  // Allow), anything else gets 405 with Allow. Empty: every method goes to the handler,
  // which then answers those rules itself.
  std::vector<std::string> methods;
  std::string path;     // exact path, or a prefix when `prefix` is set
  bool prefix = false;  // the longest matching prefix wins; exact paths win over prefixes
  HttpHandler handler;
  // Instead of `handler`: the request is answered through the responder, whenever the
  // route likes; the connection reads nothing more until then.
  HttpAsyncHandler async_handler;
  HttpAdmission admission;  // optional
  // The handler answers at once and never blocks (reads an atomic, say): it runs on an
  // I/O thread, so it answers even while every worker is busy.
  bool inline_handler = false;
};

struct HttpServerOptions {
  size_t max_body_bytes = 1 << 20;
  size_t max_header_bytes = 16 << 10;
  absl::Duration request_timeout = absl::Seconds(10);
  absl::Duration write_timeout = absl::Seconds(10);
  int max_connections = 512;
  int io_threads = 2;
  int worker_threads = 16;  // handlers that may block (a REST update waits for acks)
  // PEM certificate chain and key: serve HTTPS only. With `tls_ca` too, clients must
  // present a certificate signed by it.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;
  // SO_REUSEPORT: processes that each set it may listen on the same address, and the
  // kernel spreads new connections over them (replicas behind one port, no balancer).
  bool reuse_port = false;
};

// The Allow header of a path serving `methods`: those, HEAD where GET is, and OPTIONS,
// sorted ("GET, HEAD, OPTIONS").
std::string HttpAllowHeader(const std::vector<std::string>& methods);

// The JSON error body every chainscale HTTP error has:
// {"error": {"code": "NOT_FOUND", "message": "..."}} and a newline, code named after the
// gRPC code that fits `status`.
HttpResponse HttpError(int status, absl::string_view message);

class HttpServer {
 public:
  explicit HttpServer(HttpServerOptions options = {});
  ~HttpServer();  // stops the server

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Routes are added before Start.
  void Route(HttpRoute route);

  // Binds `host_port` ("127.0.0.1:8080", port 0 for any) and serves in the background.
  // Returns the bound port; UNAVAILABLE when the address cannot be bound,
  // INVALID_ARGUMENT for a malformed address or unusable TLS material.
  absl::StatusOr<int> Start(const std::string& host_port);
  // Closes the listening socket: new connections are refused, those open go on (a held
  // request is still answered, a keep-alive connection may send more). For a graceful
  // shutdown: StopAccepting, let held requests finish, then Stop. Waits until the socket
  // is closed; not from an inline handler. Idempotent.
  void StopAccepting();
  // Waits until every request that reached its handler (held ones included) has been
  // answered and its answer written, or its connection failed; false when `timeout`
  // passes first. After StopAccepting, so that Stop cuts no answer off.
  bool AwaitAnswered(absl::Duration timeout);
  // Stops accepting, closes every connection (held requests included: their responders
  // then answer nothing), waits for running handlers. Idempotent.
  void Stop();

  // Connections open now (for tests and metrics).
  int connections() const;
  // Requests of asynchronous routes waiting for their answer now.
  int held_requests() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Splits "host:port" (also "[::1]:port"); INVALID_ARGUMENT when malformed.
absl::StatusOr<std::pair<std::string, int>> SplitHostPort(const std::string& host_port);

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_HTTP_SERVER_H_
