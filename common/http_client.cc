#include "common/http_client.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace chainscale {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using local = net::local::stream_protocol;

// Writes `message` on a connected `stream` and reads the answer into `parser`; the
// outcome lands in `*result`. Runs on the caller's io_context.
template <typename Stream>
void Exchange(Stream& stream, const http::request<http::string_body>& message,
              beast::flat_buffer& buffer, http::response_parser<http::string_body>& parser,
              beast::error_code* result) {
  http::async_write(stream, message, [&stream, &buffer, &parser, result](beast::error_code ec,
                                                                          size_t) {
    // A server may answer before it has read the whole body (413 for a body over its
    // limit) and close; the write then fails, but the answer can still be read, as curl
    // does. The write's error stands only when there is no answer.
    http::async_read(stream, buffer, parser,
                     [result, ec](beast::error_code read_error, size_t) {
                       *result = ec && read_error ? ec : read_error;
                     });
  });
}

absl::Status StatusOf(beast::error_code ec, absl::string_view address) {
  if (ec == beast::error::timeout) {
    return absl::DeadlineExceededError(absl::StrCat("no answer from ", address, " in time"));
  }
  if (ec == http::error::body_limit || ec == http::error::header_limit) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the answer from ", address, " is too large"));
  }
  if (ec.category() == http::make_error_code(http::error::bad_version).category() &&
      ec != http::error::end_of_stream && ec != http::error::partial_message) {
    return absl::InternalError(
        absl::StrCat("malformed answer from ", address, ": ", ec.message()));
  }
  return absl::UnavailableError(absl::StrCat("HTTP to ", address, " failed: ", ec.message()));
}

}  // namespace

absl::StatusOr<HttpClientResponse> HttpCall(absl::string_view address,
                                            const HttpClientRequest& request,
                                            const HttpClientOptions& options) {
  absl::string_view socket_path = address;
  const bool unix_socket = absl::ConsumePrefix(&socket_path, "unix:");
  http::request<http::string_body> message(
      http::string_to_verb(request.method), request.target, 11);
  if (message.method() == http::verb::unknown) message.method_string(request.method);
  message.set(http::field::host, unix_socket ? "localhost" : std::string(address));
  for (const auto& [name, value] : request.headers) message.insert(name, value);
  if (!request.body.empty()) {
    message.body() = request.body;
    message.prepare_payload();
  }
  message.keep_alive(false);

  net::io_context io;
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(options.max_response_bytes);
  parser.header_limit(64 << 10);
  if (message.method() == http::verb::head) parser.skip(true);
  beast::error_code result = net::error::operation_aborted;
  const auto timeout = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      absl::ToChronoNanoseconds(options.timeout));

  std::optional<beast::basic_stream<local>> unix_stream;
  std::optional<beast::tcp_stream> tcp_stream;
  if (unix_socket) {
    unix_stream.emplace(io);
    unix_stream->expires_after(timeout);
    unix_stream->async_connect(local::endpoint(std::string(socket_path)),
                               [&](beast::error_code ec) {
                                 if (ec) {
                                   result = ec;
                                   return;
                                 }
                                 Exchange(*unix_stream, message, buffer, parser, &result);
                               });
  } else {
    absl::StatusOr<std::pair<std::string, int>> host_port = SplitHostPort(std::string(address));
    if (!host_port.ok()) return host_port.status();
    beast::error_code ec;
    tcp::resolver resolver(io);
    const auto endpoints =
        resolver.resolve(host_port->first, std::to_string(host_port->second), ec);
    if (ec) return StatusOf(ec, address);
    tcp_stream.emplace(io);
    tcp_stream->expires_after(timeout);
    tcp_stream->async_connect(endpoints, [&](beast::error_code connect_error,
                                             const tcp::endpoint&) {
      if (connect_error) {
        result = connect_error;
        return;
      }
      Exchange(*tcp_stream, message, buffer, parser, &result);
    });
  }
  io.run();
  if (result) return StatusOf(result, address);
  HttpClientResponse response;
  auto& answer = parser.get();
  response.status = static_cast<int>(answer.result_int());
  for (const auto& field : answer) {
    response.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  response.body = std::move(answer.body());
  return response;
}

}  // namespace chainscale
