#include "common/http_port.h"

namespace chainscale {

absl::StatusOr<HttpServerOptions> HttpOptionsFor(const TlsFiles& tls, int max_connections) {
  absl::StatusOr<TlsMaterial> material = LoadServerTls(tls);
  if (!material.ok()) return material.status();
  HttpServerOptions options;
  options.max_connections = max_connections;
  options.tls_cert = std::move(material->cert);
  options.tls_key = std::move(material->key);
  options.tls_ca = std::move(material->ca);
  return options;
}

void AddStatusRoutes(HttpServer& server, const Metrics& metrics,
                     const std::atomic<bool>& serving) {
  HttpRoute metrics_route;
  metrics_route.methods = {"GET"};
  metrics_route.path = "/metrics";
  metrics_route.handler = [&metrics](const HttpRequest&) {
    HttpResponse response;
    response.content_type = "text/plain; version=0.0.4";
    response.body = metrics.Render();
    return response;
  };
  server.Route(std::move(metrics_route));

  HttpRoute health_route;
  health_route.methods = {"GET"};
  health_route.path = "/healthz";
  health_route.inline_handler = true;
  health_route.handler = [&serving](const HttpRequest&) {
    HttpResponse response;
    const bool up = serving.load();
    response.status = up ? 200 : 503;
    response.body = up ? "SERVING\n" : "NOT_SERVING\n";
    return response;
  };
  server.Route(std::move(health_route));
}

}  // namespace chainscale
