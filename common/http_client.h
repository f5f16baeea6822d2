// HttpCall: one HTTP/1.1 request over TCP ("host:port") or a unix socket
// ("unix:/path/to/socket"), for tests, scrapers and tools that talk to a local HTTP server
// (chainscale's own, a replica's /metrics, a daemon's socket). Plaintext only. The whole
// exchange is bounded in time and the answer in size.
#ifndef CHAINSCALE_COMMON_HTTP_CLIENT_H_
#define CHAINSCALE_COMMON_HTTP_CLIENT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/http_server.h"

namespace chainscale {

struct HttpClientRequest {
  std::string method = "GET";
  std::string target = "/";  // path and query
  HttpHeaders headers;
  std::string body;  // sent with a Content-Length when not empty
};

struct HttpClientResponse {
  int status = 0;
  HttpHeaders headers;
  std::string body;

  std::string Header(absl::string_view name) const { return HttpHeaderValue(headers, name); }
};

struct HttpClientOptions {
  absl::Duration timeout = absl::Seconds(10);  // connect, send and receive
  size_t max_response_bytes = 64 << 20;
};

// Sends `request` on a new connection to `address` and reads the answer. UNAVAILABLE
// when the connection fails or breaks, DEADLINE_EXCEEDED past the timeout,
// RESOURCE_EXHAUSTED for an answer over the size limit, INTERNAL for a malformed one.
absl::StatusOr<HttpClientResponse> HttpCall(absl::string_view address,
                                            const HttpClientRequest& request,
                                            const HttpClientOptions& options = {});

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_HTTP_CLIENT_H_
