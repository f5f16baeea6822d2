#include "common/http_server.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <future>
#include <map>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/json_print.h"

namespace chainscale {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using SteadyTime = std::chrono::steady_clock::time_point;

// After refusing a request whose body was not read, the server stops sending and reads
// (and discards) what the client still sends for at most this long before closing, so
// the close does not reset the connection before the client has read the answer.
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr size_t kLingerBufferBytes = 16 << 10;

std::chrono::steady_clock::duration ToSteady(absl::Duration d) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      absl::ToChronoNanoseconds(d));
}

const char* CodeNameFor(int status) {
  switch (status) {
    case 401:
      return "UNAUTHENTICATED";
    case 403:
      return "PERMISSION_DENIED";
    case 404:
      return "NOT_FOUND";
    case 408:
      return "DEADLINE_EXCEEDED";
    case 409:
      return "FAILED_PRECONDITION";
    case 429:
      return "RESOURCE_EXHAUSTED";
    case 501:
      return "UNIMPLEMENTED";
    case 503:
      return "UNAVAILABLE";
    default:
      return status >= 400 && status < 500 ? "INVALID_ARGUMENT" : "INTERNAL";
  }
}

bool Contains(const std::vector<std::string>& list, absl::string_view item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

std::string ClientAddress(const tcp::socket& socket) {
  beast::error_code ec;
  const tcp::endpoint peer = socket.remote_endpoint(ec);
  if (ec) return "";
  net::ip::address address = peer.address();
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    address = net::ip::make_address_v4(net::ip::v4_mapped, address.to_v6());
  }
  return address.to_string();
}

}  // namespace

std::string HttpHeaderValue(const HttpHeaders& headers, absl::string_view name) {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) return value;
  }
  return "";
}

std::string HttpAllowHeader(const std::vector<std::string>& methods) {
  std::vector<std::string> allowed = methods;
  if (Contains(allowed, "GET") && !Contains(allowed, "HEAD")) allowed.push_back("HEAD");
  if (!Contains(allowed, "OPTIONS")) allowed.push_back("OPTIONS");
  std::sort(allowed.begin(), allowed.end());
  return absl::StrJoin(allowed, ", ");
}

HttpResponse HttpError(int status, absl::string_view message) {
  google::protobuf::Struct root;
  google::protobuf::Struct* error = (*root.mutable_fields())["error"].mutable_struct_value();
  (*error->mutable_fields())["code"].set_string_value(CodeNameFor(status));
  (*error->mutable_fields())["message"].set_string_value(std::string(message));
  HttpResponse response;
  response.status = status;
  response.content_type = "application/json";
  if (!PrintJson(root, google::protobuf::util::JsonPrintOptions(), &response.body).ok()) {
    response.body = R"({"error":{"code":"INTERNAL","message":"cannot print the error"}})";
  }
  response.body.push_back('\n');
  return response;
}

namespace http_internal {

// The requests of asynchronous routes waiting for their answer, by id. Each entry's reply
// posts the response to its connection's strand and holds the connection (a Session) alive
// while the request waits: nothing else does, since no I/O is pending meanwhile. Stop
// closes the table after the I/O threads have ended and before the I/O context is
// destroyed, so a reply never posts to a context that is gone and a session never
// outlives its context.
class HeldRequests {
 public:
  using Reply = std::function<void(HttpResponse)>;

  // The request's id; 0 when the table is closed (the server is stopping).
  uint64_t Hold(Reply reply) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (closed_) return 0;
    const uint64_t id = ++next_id_;
    replies_.emplace(id, std::move(reply));
    return id;
  }

  // False when `id` was answered already or the table is closed.
  bool Answer(uint64_t id, HttpResponse response) ABSL_LOCKS_EXCLUDED(mu_) {
    Reply reply;  // destroyed after the lock is released
    absl::MutexLock lock(&mu_);
    auto it = replies_.find(id);
    if (it == replies_.end()) return false;
    reply = std::move(it->second);
    replies_.erase(it);
    // Posting only; under the lock, so Close cannot let the context go meanwhile.
    reply(std::move(response));
    return true;
  }

  // Refuses every later Hold and Answer; returns the replies never given, for the caller
  // to destroy (and with them their connections) while the I/O context still exists.
  std::map<uint64_t, Reply> Close() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    return std::exchange(replies_, {});
  }

  int size() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(replies_.size());
  }

 private:
  mutable absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, Reply> replies_ ABSL_GUARDED_BY(mu_);
};

}  // namespace http_internal

HttpResponder::HttpResponder(HttpResponder&& other) noexcept
    : held_(std::move(other.held_)), id_(std::exchange(other.id_, 0)) {}

HttpResponder& HttpResponder::operator=(HttpResponder&& other) noexcept {
  if (this != &other) {
    if (held_ != nullptr) Send(HttpError(500, "the server gave no answer to this request"));
    held_ = std::move(other.held_);
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

HttpResponder::~HttpResponder() {
  if (held_ != nullptr) Send(HttpError(500, "the server gave no answer to this request"));
}

bool HttpResponder::Send(HttpResponse response) {
  if (held_ == nullptr) return false;
  const bool sent = held_->Answer(id_, std::move(response));
  held_.reset();
  return sent;
}

absl::StatusOr<std::pair<std::string, int>> SplitHostPort(const std::string& host_port) {
  const size_t colon = host_port.rfind(':');
  int port = 0;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(host_port.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", host_port, "\" is not host:port (for example 127.0.0.1:8080)"));
  }
  std::string host = host_port.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return std::make_pair(host, port);
}

class HttpServer::Impl {
 public:
  explicit Impl(HttpServerOptions options) : options_(std::move(options)) {}

  // Holds one of the `max_connections` places for as long as a connection lives.
  class Slot {
   public:
    explicit Slot(Impl& impl) : impl_(&impl) { impl_->connections_.fetch_add(1); }
    Slot(Slot&& other) noexcept : impl_(std::exchange(other.impl_, nullptr)) {}
    Slot& operator=(Slot&&) = delete;
    ~Slot() {
      if (impl_ != nullptr) impl_->connections_.fetch_sub(1);
    }
    Impl& impl() const { return *impl_; }

   private:
    Impl* impl_;
  };

  template <typename Stream>
  class Session;
  class TlsDetector;

  void AddRoute(HttpRoute route) { routes_.push_back(std::move(route)); }

  // The exact route for `path`, else the longest prefix route; null when none.
  const HttpRoute* Find(absl::string_view path) const {
    const HttpRoute* best = nullptr;
    for (const HttpRoute& route : routes_) {
      if (!route.prefix) {
        if (route.path == path) return &route;
      } else if (absl::StartsWith(path, route.path) &&
                 (best == nullptr || route.path.size() > best->path.size())) {
        best = &route;
      }
    }
    return best;
  }

  absl::StatusOr<int> Start(const std::string& host_port);
  void StopAccepting();
  bool AwaitAnswered(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(answers_mu_) {
    absl::MutexLock lock(&answers_mu_);
    auto answered = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(answers_mu_) {
      return unanswered_ == 0;
    };
    return answers_mu_.AwaitWithTimeout(absl::Condition(&answered), timeout);
  }
  // A request reached its handler; its answer is written (or failed) at Answered.
  void Dispatched() ABSL_LOCKS_EXCLUDED(answers_mu_) {
    absl::MutexLock lock(&answers_mu_);
    ++unanswered_;
  }
  void Answered() ABSL_LOCKS_EXCLUDED(answers_mu_) {
    absl::MutexLock lock(&answers_mu_);
    --unanswered_;
  }
  void Stop();
  int connections() const { return connections_.load(); }
  int held_requests() const { return held_->size(); }
  const HttpServerOptions& options() const { return options_; }
  net::thread_pool& workers() { return *workers_; }

  // Holds a request until `reply` is called through the returned responder; an empty
  // responder when the server is stopping.
  HttpResponder Hold(http_internal::HeldRequests::Reply reply) {
    const uint64_t id = held_->Hold(std::move(reply));
    return id == 0 ? HttpResponder() : HttpResponder(held_, id);
  }

 private:
  absl::Status MakeTlsContext();
  void Accept();
  void OnAccept(tcp::socket socket);

  const HttpServerOptions options_;
  std::vector<HttpRoute> routes_;
  std::atomic<int> connections_{0};
  absl::Mutex answers_mu_;
  int unanswered_ ABSL_GUARDED_BY(answers_mu_) = 0;
  const std::shared_ptr<http_internal::HeldRequests> held_ =
      std::make_shared<http_internal::HeldRequests>();
  std::unique_ptr<ssl::context> tls_;
  std::unique_ptr<net::io_context> io_;
  // Keeps the I/O threads running while nothing is pending: with the acceptor closed and
  // every request held, the context has no work of its own, yet answers are still to come.
  std::optional<net::executor_work_guard<net::io_context::executor_type>> keep_running_;
  std::unique_ptr<tcp::acceptor> acceptor_;
  std::unique_ptr<net::steady_timer> accept_retry_;
  std::unique_ptr<net::thread_pool> workers_;
  std::vector<std::thread> threads_;
  bool accepting_ = true;  // on the acceptor's strand only
  bool started_ = false;
  bool stopped_ = false;
};

// One connection: reads a request's headers, checks route and admission, reads the body,
// runs the handler, writes the answer, and starts over for the next (possibly already
// buffered, pipelined) request. Every step runs on the connection's strand; while a
// handler runs on a worker no I/O is pending.
template <typename Stream>
class HttpServer::Impl::Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

  Session(Slot slot, Stream stream, beast::flat_buffer buffer, std::string client)
      : slot_(std::move(slot)),
        impl_(slot_.impl()),
        stream_(std::move(stream)),
        buffer_(std::move(buffer)),
        client_(std::move(client)) {}

  ~Session() {
    if (dispatched_) impl_.Answered();  // closed before its answer was written
  }

  void Start() {
    if constexpr (kTls) {
      Tcp().expires_after(ToSteady(impl_.options().request_timeout));
      stream_.async_handshake(
          ssl::stream_base::server, buffer_.data(),
          [self = this->shared_from_this()](beast::error_code ec, size_t used) {
            if (ec) return self->Close();
            self->buffer_.consume(used);
            self->NextRequest();
          });
    } else {
      NextRequest();
    }
  }

 private:
  beast::tcp_stream& Tcp() { return beast::get_lowest_layer(stream_); }

  void NextRequest() {
    const HttpServerOptions& options = impl_.options();
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(options.max_header_bytes));
    parser_->body_limit(options.max_body_bytes);
    request_ = HttpRequest();
    request_.client_address = client_;
    route_ = nullptr;
    // One deadline for the whole request, headers and body.
    Tcp().expires_at(std::chrono::steady_clock::now() + ToSteady(options.request_timeout));
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = this->shared_from_this()](beast::error_code ec, size_t) {
                              self->OnHeader(ec);
                            });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return Fail(ec);
    const auto& message = parser_->get();
    request_.method = std::string(message.method_string());
    const absl::string_view target(message.target().data(), message.target().size());
    const size_t question = target.find('?');
    request_.path = std::string(target.substr(0, question));
    if (question != absl::string_view::npos) request_.query = std::string(target.substr(question + 1));
    for (const auto& field : message) {
      request_.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    keep_alive_ = message.keep_alive();
    body_pending_ = parser_->chunked() ||
                    (parser_->content_length().has_value() && *parser_->content_length() > 0);
    if (message.count(http::field::transfer_encoding) > 0 && !parser_->chunked()) {
      // Where such a body ends is unknown: answer and close rather than read on.
      body_pending_ = true;
      return Refuse(HttpError(501, "only the chunked transfer coding is supported"));
    }
    route_ = impl_.Find(request_.path);
    if (route_ == nullptr) {
      return Refuse(HttpError(404, absl::StrCat("no such path: ", request_.path)));
    }
    if (!route_->methods.empty() && !Contains(route_->methods, request_.method) &&
        !(request_.method == "HEAD" && Contains(route_->methods, "GET"))) {
      HttpResponse response;
      if (request_.method == "OPTIONS") {
        response.status = 204;
      } else {
        response = HttpError(405, absl::StrCat("method ", request_.method,
                                               " not allowed here; use ",
                                               HttpAllowHeader(route_->methods)));
      }
      response.headers.emplace_back("Allow", HttpAllowHeader(route_->methods));
      return Refuse(std::move(response));
    }
    if (route_->admission) {
      if (std::optional<HttpResponse> refusal = route_->admission(request_)) {
        return Refuse(*std::move(refusal));
      }
    }
    if (!body_pending_) return Dispatch();
    if (absl::EqualsIgnoreCase(request_.Header("Expect"), "100-continue")) {
      // The client waits for this before sending the body it announced.
      continue_.emplace(http::status::continue_, message.version());
      return http::async_write(stream_, *continue_,
                               [self = this->shared_from_this()](beast::error_code ec, size_t) {
                                 if (ec) return self->Close();
                                 self->ReadBody();
                               });
    }
    ReadBody();
  }

  void ReadBody() {
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code ec, size_t) {
                       if (ec) return self->Fail(ec);
                       self->request_.body = std::move(self->parser_->get().body());
                       self->body_pending_ = false;
                       self->Dispatch();
                     });
  }

  void Dispatch() {
    dispatched_ = true;
    impl_.Dispatched();
    if (route_->async_handler) return DispatchHeld();
    if (route_->inline_handler) return Respond(route_->handler(request_), /*close=*/false);
    net::post(impl_.workers(), [self = this->shared_from_this()] {
      HttpResponse response = self->route_->handler(self->request_);
      net::post(self->stream_.get_executor(),
                [self, response = std::move(response)]() mutable {
                  self->Respond(std::move(response), /*close=*/false);
                });
    });
  }

  // An asynchronous route: the request is held (and this session with it) until its
  // responder answers; meanwhile no I/O is pending and no thread is taken.
  void DispatchHeld() {
    HttpResponder responder =
        impl_.Hold([self = this->shared_from_this()](HttpResponse response) {
          net::post(self->stream_.get_executor(),
                    [self, response = std::move(response)]() mutable {
                      self->Respond(std::move(response), /*close=*/false);
                    });
        });
    auto run = [self = this->shared_from_this(), responder = std::move(responder)]() mutable {
      self->route_->async_handler(self->request_, std::move(responder));
    };
    if (route_->inline_handler) return run();
    net::post(impl_.workers(), std::move(run));
  }

  // Answers without reading the body; when there is one, the connection then closes.
  void Refuse(HttpResponse response) { Respond(std::move(response), body_pending_); }

  void Fail(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      return Respond(HttpError(413, absl::StrCat("the request body is larger than ",
                                                 impl_.options().max_body_bytes, " bytes")),
                     /*close=*/true);
    }
    if (ec == http::error::header_limit) {
      return Respond(HttpError(431, absl::StrCat("the request headers are larger than ",
                                                 impl_.options().max_header_bytes, " bytes")),
                     /*close=*/true);
    }
    if (ec.category() == http::make_error_code(http::error::bad_method).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message) {
      // Malformed: a bad Content-Length, both Content-Length and chunked, a bad method.
      return Respond(HttpError(400, absl::StrCat("malformed request: ", ec.message())),
                     /*close=*/true);
    }
    // The client left, the request took too long (the stream closed itself), or the
    // server is stopping.
    Close();
  }

  void Respond(HttpResponse response, bool close) {
    const bool head = request_.method == "HEAD";
    close = close || !keep_alive_;
    response_.emplace(static_cast<http::status>(response.status), 11);
    auto& message = *response_;
    message.set(http::field::server, "chainscale");
    if (response.status != 204) message.set(http::field::content_type, response.content_type);
    for (auto& [name, value] : response.headers) message.insert(name, value);
    const size_t length = response.body.size();
    if (!head) message.body() = std::move(response.body);
    if (response.status != 204) message.content_length(length);
    message.keep_alive(!close);
    Tcp().expires_after(ToSteady(impl_.options().write_timeout));
    // A refused request's body is still coming: read it away before closing.
    const bool linger = close && body_pending_;
    http::async_write(stream_, message,
                      [self = this->shared_from_this(), close, linger](beast::error_code ec,
                                                                        size_t) {
                        self->response_.reset();
                        if (std::exchange(self->dispatched_, false)) self->impl_.Answered();
                        if (ec) return self->Close();
                        if (linger) return self->Linger();
                        if (close) return self->Close();
                        self->NextRequest();
                      });
  }

  void Linger() {
    beast::error_code ignored;
    Tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
    Tcp().expires_after(kLingerTime);
    scratch_ = std::make_unique<char[]>(kLingerBufferBytes);
    Drain();
  }

  void Drain() {
    Tcp().async_read_some(net::buffer(scratch_.get(), kLingerBufferBytes),
                          [self = this->shared_from_this()](beast::error_code ec, size_t) {
                            if (ec) return self->Close();
                            self->Drain();
                          });
  }

  void Close() {
    beast::error_code ignored;
    Tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
    Tcp().close();
  }

  Slot slot_;
  Impl& impl_;
  Stream stream_;
  beast::flat_buffer buffer_;
  const std::string client_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::empty_body>> continue_;
  std::optional<http::response<http::string_body>> response_;
  HttpRequest request_;
  const HttpRoute* route_ = nullptr;
  bool keep_alive_ = true;
  bool body_pending_ = false;
  bool dispatched_ = false;  // the request reached its handler; its answer is not written
  std::unique_ptr<char[]> scratch_;
};

// On an HTTPS port: looks at the first bytes; a TLS handshake goes on to a TLS session,
// plaintext HTTP gets a 400 that says to use https, and the connection closes.
class HttpServer::Impl::TlsDetector : public std::enable_shared_from_this<TlsDetector> {
 public:
  TlsDetector(Slot slot, tcp::socket socket, ssl::context& context, std::string client)
      : slot_(std::move(slot)),
        stream_(std::move(socket)),
        context_(context),
        client_(std::move(client)) {}

  void Start() {
    stream_.expires_after(ToSteady(slot_.impl().options().request_timeout));
    beast::async_detect_ssl(stream_, buffer_,
                            [self = shared_from_this()](beast::error_code ec, bool tls) {
                              self->OnDetect(ec, tls);
                            });
  }

 private:
  void OnDetect(beast::error_code ec, bool tls) {
    if (ec) return;  // gone, or silent past the deadline: the stream closes itself
    if (tls) {
      std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
          std::move(slot_), beast::ssl_stream<beast::tcp_stream>(std::move(stream_), context_),
          std::move(buffer_), client_)
          ->Start();
      return;
    }
    HttpResponse error = HttpError(400, "this port serves HTTPS only; use https://");
    response_.emplace(http::status::bad_request, 11);
    response_->set(http::field::content_type, error.content_type);
    response_->body() = std::move(error.body);
    response_->prepare_payload();
    response_->keep_alive(false);
    stream_.expires_after(kLingerTime);
    http::async_write(stream_, *response_,
                      [self = shared_from_this()](beast::error_code, size_t) {
                        beast::error_code ignored;
                        self->stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
                        self->stream_.close();
                      });
  }

  Slot slot_;
  beast::tcp_stream stream_;
  ssl::context& context_;
  const std::string client_;
  beast::flat_buffer buffer_;
  std::optional<http::response<http::string_body>> response_;
};

absl::Status HttpServer::Impl::MakeTlsContext() {
  if (options_.tls_cert.empty()) return absl::OkStatus();
  tls_ = std::make_unique<ssl::context>(ssl::context::tls_server);
  tls_->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                    ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                    ssl::context::single_dh_use);
  beast::error_code ec;
  tls_->use_certificate_chain(net::buffer(options_.tls_cert), ec);
  if (!ec) tls_->use_private_key(net::buffer(options_.tls_key), ssl::context::pem, ec);
  if (!ec && !options_.tls_ca.empty()) {
    tls_->add_certificate_authority(net::buffer(options_.tls_ca), ec);
    tls_->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  }
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot serve HTTPS with the given certificate: ", ec.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> HttpServer::Impl::Start(const std::string& host_port) {
  absl::StatusOr<std::pair<std::string, int>> address = SplitHostPort(host_port);
  if (!address.ok()) return address.status();
  if (options_.max_connections < 1 || options_.io_threads < 1 || options_.worker_threads < 1) {
    return absl::InvalidArgumentError(
        "the HTTP port needs at least one connection, I/O thread and worker");
  }
  if (absl::Status s = MakeTlsContext(); !s.ok()) return s;
  io_ = std::make_unique<net::io_context>(options_.io_threads);
  // On a strand of its own, so StopAccepting can close it between two accepts.
  acceptor_ = std::make_unique<tcp::acceptor>(net::make_strand(*io_));
  accept_retry_ = std::make_unique<net::steady_timer>(acceptor_->get_executor());
  beast::error_code ec;
  tcp::resolver resolver(*io_);
  const auto endpoints =
      resolver.resolve(address->first, std::to_string(address->second), ec);
  if (!ec && endpoints.empty()) ec = net::error::host_not_found;
  if (!ec) {
    const tcp::endpoint endpoint = endpoints.begin()->endpoint();
    acceptor_->open(endpoint.protocol(), ec);
    if (!ec) acceptor_->set_option(net::socket_base::reuse_address(true), ec);
    if (!ec && options_.reuse_port) {
      acceptor_->set_option(net::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true),
                            ec);
    }
    if (!ec) acceptor_->bind(endpoint, ec);
    if (!ec) acceptor_->listen(net::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for HTTP on ", host_port, ": ", ec.message()));
  }
  const int port = acceptor_->local_endpoint().port();
  workers_ = std::make_unique<net::thread_pool>(options_.worker_threads);
  keep_running_.emplace(io_->get_executor());
  started_ = true;
  Accept();
  for (int i = 0; i < options_.io_threads; ++i) threads_.emplace_back([this] { io_->run(); });
  return port;
}

void HttpServer::Impl::Accept() {
  acceptor_->async_accept(net::make_strand(*io_), [this](beast::error_code ec,
                                                         tcp::socket socket) {
    // A connection accepted just before StopAccepting is still served.
    if (!ec) OnAccept(std::move(socket));
    if (!accepting_ || ec == net::error::operation_aborted) return;
    if (!ec) return Accept();
    // Out of descriptors, say: try again shortly instead of spinning.
    accept_retry_->expires_after(std::chrono::milliseconds(50));
    accept_retry_->async_wait([this](beast::error_code wait_error) {
      if (!wait_error && accepting_) Accept();
    });
  });
}

void HttpServer::Impl::StopAccepting() {
  if (!started_ || stopped_) return;
  std::promise<void> closed;
  net::post(acceptor_->get_executor(), [this, &closed] {
    accepting_ = false;
    beast::error_code ignored;
    acceptor_->close(ignored);
    accept_retry_->cancel();
    closed.set_value();
  });
  closed.get_future().wait();
}

void HttpServer::Impl::OnAccept(tcp::socket socket) {
  if (connections_.load() >= options_.max_connections) {
    // Over the limit: a short answer written without waiting, then closed.
    static const std::string* const kBusy = [] {
      HttpResponse error = HttpError(503, "too many connections; retry shortly");
      http::response<http::string_body> message(http::status::service_unavailable, 11);
      message.set(http::field::content_type, error.content_type);
      message.set(http::field::retry_after, "1");
      message.body() = std::move(error.body);
      message.prepare_payload();
      message.keep_alive(false);
      std::ostringstream out;
      out << message;
      return new std::string(out.str());
    }();
    beast::error_code ignored;
    socket.non_blocking(true, ignored);
    socket.write_some(net::buffer(*kBusy), ignored);
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
    return;
  }
  std::string client = ClientAddress(socket);
  Slot slot(*this);
  if (tls_ != nullptr) {
    std::make_shared<TlsDetector>(std::move(slot), std::move(socket), *tls_, std::move(client))
        ->Start();
  } else {
    std::make_shared<Session<beast::tcp_stream>>(std::move(slot),
                                                 beast::tcp_stream(std::move(socket)),
                                                 beast::flat_buffer(), std::move(client))
        ->Start();
  }
}

void HttpServer::Impl::Stop() {
  if (!started_ || stopped_) return;
  stopped_ = true;
  io_->stop();
  for (std::thread& t : threads_) t.join();
  workers_->join();
  // Held requests hold their connections: those close here, while their context exists.
  held_->Close();
  // Connections still open are destroyed with the handlers that hold them.
  accept_retry_.reset();
  acceptor_.reset();
  keep_running_.reset();
  io_.reset();
}

HttpServer::HttpServer(HttpServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Route(HttpRoute route) { impl_->AddRoute(std::move(route)); }

absl::StatusOr<int> HttpServer::Start(const std::string& host_port) {
  return impl_->Start(host_port);
}

void HttpServer::StopAccepting() { impl_->StopAccepting(); }

bool HttpServer::AwaitAnswered(absl::Duration timeout) { return impl_->AwaitAnswered(timeout); }

void HttpServer::Stop() { impl_->Stop(); }

int HttpServer::connections() const { return impl_->connections(); }

int HttpServer::held_requests() const { return impl_->held_requests(); }

}  // namespace chainscale
