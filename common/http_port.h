// The HTTP port every chainscale process opens (--http_listen): its options from the TLS
// flags, and the routes it always serves, GET /metrics (Prometheus text format) and
// GET /healthz (200 "SERVING" or 503 "NOT_SERVING", as grpc.health.v1 says).
#ifndef CHAINSCALE_COMMON_HTTP_PORT_H_
#define CHAINSCALE_COMMON_HTTP_PORT_H_

#include <atomic>

#include "absl/status/statusor.h"
#include "common/http_server.h"
#include "common/metrics.h"
#include "common/tls.h"

namespace chainscale {

// Server options with the certificate of the gRPC port (the files checked as
// LoadServerTls does, with its errors) and the connection limit.
absl::StatusOr<HttpServerOptions> HttpOptionsFor(const TlsFiles& tls, int max_connections);

// `metrics` and `serving` must outlive the server. /healthz answers on the server's I/O
// threads, so it answers even while every worker is busy.
void AddStatusRoutes(HttpServer& server, const Metrics& metrics,
                     const std::atomic<bool>& serving);

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_HTTP_PORT_H_
