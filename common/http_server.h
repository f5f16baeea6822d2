// HttpServer: the HTTP port of a chainscale process (--http_listen), serving /metrics,
// /healthz and, on the control plane, the REST gateway. A thin owner of a cpp-httplib
// server running on its own threads.
#ifndef CHAINSCALE_COMMON_HTTP_SERVER_H_
#define CHAINSCALE_COMMON_HTTP_SERVER_H_

#include <httplib.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace chainscale {

class HttpServer {
 public:
  HttpServer();
  ~HttpServer();  // stops the server

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Register handlers before Start.
  httplib::Server& routes() { return *server_; }

  // Binds `host_port` ("127.0.0.1:8080", port 0 for any) and serves in the background.
  // Returns the bound port; UNAVAILABLE when the address cannot be bound.
  absl::StatusOr<int> Start(const std::string& host_port);
  void Stop();

 private:
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

// Splits "host:port" (also "[::1]:port"); INVALID_ARGUMENT when malformed.
absl::StatusOr<std::pair<std::string, int>> SplitHostPort(const std::string& host_port);

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_HTTP_SERVER_H_
