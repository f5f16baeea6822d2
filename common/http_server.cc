#include "common/http_server.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace chainscale {

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

HttpServer::HttpServer() : server_(std::make_unique<httplib::Server>()) {
  // Bounded time for slow clients.
  server_->set_read_timeout(5, 0);
  server_->set_write_timeout(5, 0);
  server_->set_payload_max_length(1 << 20);
}

HttpServer::~HttpServer() { Stop(); }

absl::StatusOr<int> HttpServer::Start(const std::string& host_port) {
  absl::StatusOr<std::pair<std::string, int>> address = SplitHostPort(host_port);
  if (!address.ok()) return address.status();
  const auto& [host, requested] = *address;
  int port = requested;
  if (requested == 0) {
    port = server_->bind_to_any_port(host);
  } else if (!server_->bind_to_port(host, requested)) {
    port = -1;
  }
  if (port <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen for HTTP on ", host_port));
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return port;
}

void HttpServer::Stop() {
  if (!thread_.joinable()) return;
  server_->stop();
  thread_.join();
}

}  // namespace chainscale
