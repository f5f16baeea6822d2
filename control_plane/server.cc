#include "control_plane/server.h"

#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/server_builder.h>

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/http_port.h"
#include "common/keepalive.h"
#include "common/log.h"
#include "common/server_reflection.h"

namespace chainscale {
namespace {

// A console answer as HTTP; errors are rendered as the REST gateway renders them.
HttpResponse ConsoleHttpResponse(ConsoleResponse response) {
  HttpResponse out;
  if (!response.error.ok()) {
    out = HttpResponseFrom(ErrorResponse(response.error));
    out.content_type = "application/json";
    if (response.http_status != 0) out.status = response.http_status;
  } else {
    out.content_type = std::move(response.content_type);
    out.body = std::move(response.body);
  }
  for (auto& [name, value] : response.headers) out.headers.emplace_back(name, value);
  return out;
}

// The console's routes on the HTTP port. Its calls that need a key are admitted by the
// REST gateway (the key, the per-key rate limit, the throttle on failed keys), so the
// console is no way around the gateway's limits; then by the console itself.
void RegisterConsole(HttpServer& http, Console& console, RestGateway& rest) {
  for (const Console::Path& path : Console::Paths()) {
    HttpRoute route;
    route.methods = {path.method};
    route.path = path.path;
    route.prefix = path.prefix;
    const bool needs_key = path.needs_key;
    route.admission = [&console, &rest,
                       needs_key](const HttpRequest& head) -> std::optional<HttpResponse> {
      if (needs_key) {
        if (std::optional<RestResponse> refused = rest.Admit(RestRequestFrom(head))) {
          return HttpResponseFrom(*std::move(refused));
        }
      }
      std::optional<ConsoleResponse> refused =
          console.Admit({head.method, head.path, head.query, head.Header("Authorization"),
                         head.body});
      if (!refused.has_value()) return std::nullopt;
      return ConsoleHttpResponse(*std::move(refused));
    };
    route.handler = [&console](const HttpRequest& request) {
      return ConsoleHttpResponse(console.Respond({request.method, request.path, request.query,
                                                  request.Header("Authorization"),
                                                  request.body}));
    };
    http.Route(std::move(route));
  }
}

constexpr char kServiceName[] = "chainscale.v1.ControlPlane";
constexpr char kScalerServiceName[] = "externalscaler.ExternalScaler";

}  // namespace

ControlPlaneServer::ControlPlaneServer(ControlPlaneOptions options)
    : options_(std::move(options)), history_(options_.history) {}

absl::StatusOr<std::unique_ptr<ControlPlaneServer>> ControlPlaneServer::Start(
    ControlPlaneOptions options) {
  if (options.api_keys.empty() && !options.insecure) {
    return absl::FailedPreconditionError(
        "no API keys configured: pass --api_keys_file or set CHAINSCALE_API_KEYS "
        "(or --insecure for a local demo without keys)");
  }
  std::unique_ptr<ControlPlaneServer> server(new ControlPlaneServer(std::move(options)));
  if (absl::Status s = server->StartServing(); !s.ok()) return s;
  if (absl::Status s = server->OpenStore(); !s.ok()) {
    server->Shutdown(absl::ZeroDuration());
    return s;
  }
  server->SetServing(true);
  LogInfo("control plane serving",
          {{"grpc", absl::StrCat(server->grpc_port_)},
           {"http", absl::StrCat(server->http_port_)},
           {"data_dir", server->options_.data_dir},
           {"mode", server->store_->read_only() ? "read-only (disk short of space)" : "read-write"},
           {"revision", absl::StrCat(server->store_->revision())},
           {"cluster_id", server->store_->cluster_id()},
           {"auth", server->options_.api_keys.empty() ? "off (--insecure)" : "api keys"}});
  return server;
}

absl::Status ControlPlaneServer::StartServing() {
  metrics_.Describe("chainscale_rpc_requests_total", "counter",
                    "Management RPCs handled, by method and status code.");
  metrics_.Describe("chainscale_rpc_duration_seconds", "summary",
                    "Time spent in management RPCs, by method.");
  metrics_.Describe("chainscale_sync_streams_total", "counter", "Sync streams opened.");
  metrics_.Describe("chainscale_decision_watches_total", "counter",
                    "WatchScalingDecisions streams opened.");
  metrics_.AddCollector([this](std::string* out) {
    if (!serving_.load()) return;
    absl::StrAppend(out,
                    "# HELP chainscale_settings_revision Latest committed settings revision.\n"
                    "# TYPE chainscale_settings_revision gauge\n"
                    "chainscale_settings_revision ",
                    store_->revision(), "\n",
                    "# HELP chainscale_sync_lag_revisions Revisions an agent has not been sent.\n"
                    "# TYPE chainscale_sync_lag_revisions gauge\n");
    const std::vector<SyncHub::SubscriptionStats> stats = hub_->Stats();
    for (const SyncHub::SubscriptionStats& s : stats) {
      absl::StrAppend(out, "chainscale_sync_lag_revisions",
                      RenderLabels({{"agent", s.agent_id}}), " ", s.lag, "\n");
    }
    absl::StrAppend(out,
                    "# HELP chainscale_sync_buffered_bytes Bytes read for an agent, not yet sent.\n"
                    "# TYPE chainscale_sync_buffered_bytes gauge\n");
    for (const SyncHub::SubscriptionStats& s : stats) {
      absl::StrAppend(out, "chainscale_sync_buffered_bytes",
                      RenderLabels({{"agent", s.agent_id}}), " ", s.buffered_bytes, "\n");
    }
    absl::StrAppend(
        out,
        "# HELP chainscale_decisions_refused_total Decisions from agents refused (invalid, "
        "unknown chainlet, or an environment the agent does not serve).\n"
        "# TYPE chainscale_decisions_refused_total counter\n"
        "chainscale_decisions_refused_total ",
        hub_->decisions_refused(),
        "\n# HELP chainscale_decisions_stored_total Decisions from agents stored.\n"
        "# TYPE chainscale_decisions_stored_total counter\n"
        "chainscale_decisions_stored_total ",
        hub_->decisions_stored(),
        "\n# HELP chainscale_store_read_only 1 while the store serves reads only (its disk "
        "is short of space).\n# TYPE chainscale_store_read_only gauge\n"
        "chainscale_store_read_only ",
        store_->read_only() ? 1 : 0,
        "\n# HELP chainscale_commit_groups_total Synced write batches; commits share them.\n"
        "# TYPE chainscale_commit_groups_total counter\nchainscale_commit_groups_total ",
        committer_->groups(), "\n");
    if (coordinator_ == nullptr) return;
    const Coordinator::Stats ownership = coordinator_->stats();
    absl::StrAppend(out,
                    "# HELP chainscale_owned_environments Chain environments each agent owns.\n"
                    "# TYPE chainscale_owned_environments gauge\n");
    std::vector<std::pair<std::string, int64_t>> owned(ownership.owned.begin(),
                                                       ownership.owned.end());
    std::sort(owned.begin(), owned.end());
    for (const auto& [agent, count] : owned) {
      absl::StrAppend(out, "chainscale_owned_environments", RenderLabels({{"agent", agent}}), " ",
                      count, "\n");
    }
    absl::StrAppend(
        out,
        "# HELP chainscale_ownership_hand_overs_total Chain environments given a new owner "
        "(first assignments, joins, failovers).\n"
        "# TYPE chainscale_ownership_hand_overs_total counter\n"
        "chainscale_ownership_hand_overs_total ",
        ownership.hand_overs,
        "\n# HELP chainscale_ownership_expired_leases_total Times a lease ran out and its "
        "work moved (failovers).\n# TYPE chainscale_ownership_expired_leases_total counter\n"
        "chainscale_ownership_expired_leases_total ",
        ownership.expired_leases, "\n");
  });

  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials(options_.tls);
  if (!credentials.ok()) return credentials.status();
  service_ = std::make_unique<ControlPlaneService>(
      ControlPlaneServiceOptions{options_.api_keys, options_.agent_tokens, options_.insecure,
                                 options_.max_feed_pending},
      &metrics_);
  // KEDA's external scaler takes the management keys (in its trigger metadata).
  scaler_service_ = std::make_unique<ExternalScalerService>(options_.api_keys, &metrics_);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  ApplyServerKeepalive(builder);
  AddServerReflection(builder);
  builder.AddListeningPort(options_.listen, *credentials, &grpc_port_);
  builder.SetMaxReceiveMessageSize(options_.max_message_bytes);
  builder.RegisterService(service_.get());
  builder.RegisterService(scaler_service_.get());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || grpc_port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen for gRPC on ", options_.listen));
  }
  SetServing(false);

  if (!options_.http_listen.empty()) {
    absl::StatusOr<HttpServerOptions> http_options =
        HttpOptionsFor(options_.tls, options_.http_max_connections);
    if (!http_options.ok()) return http_options.status();
    http_ = std::make_unique<HttpServer>(*std::move(http_options));
    rest_ = std::make_unique<RestGateway>(
        RestGatewayOptions{options_.api_keys, options_.rest_rate_limit}, &metrics_,
        RealClock::Get());
    ConsoleOptions console;
    console.api_keys = options_.api_keys;
    console.history = &history_;
    console_ = std::make_unique<Console>(std::move(console));
    RegisterConsole(*http_, *console_, *rest_);
    rest_->Register(*http_);
    AddStatusRoutes(*http_, metrics_, serving_);
    metrics_.AddCollector([rest = rest_.get()](std::string* out) {
      absl::StrAppend(out,
                      "# HELP chainscale_rest_limit_buckets Buckets held by the REST rate "
                      "limits (bounded).\n# TYPE chainscale_rest_limit_buckets gauge\n"
                      "chainscale_rest_limit_buckets{limit=\"key\"} ",
                      rest->tracked_keys(),
                      "\nchainscale_rest_limit_buckets{limit=\"failed_keys\"} ",
                      rest->tracked_clients(), "\n");
    });
    absl::StatusOr<int> port = http_->Start(options_.http_listen);
    if (!port.ok()) return port.status();
    http_port_ = *port;
  }
  return absl::OkStatus();
}

absl::Status ControlPlaneServer::OpenStore() {
  StoreOptions store_options;
  store_options.path = options_.data_dir;
  store_options.log_retention = options_.log_retention;
  store_options.min_free_bytes = options_.min_free_disk_bytes;
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(store_options);
  if (!store.ok()) return store.status();
  store_ = *std::move(store);
  // Stored decisions reach the watchers and the console's history through the feed.
  feed_ = std::make_unique<DecisionFeed>(store_.get(), options_.feed,
                                         [history = &history_](const FeedBatch& batch) {
                                           for (const FeedEventPtr& event : batch) {
                                             history->Record(event->decision);
                                           }
                                         });
  // Commits reach the hub through the committer's listener; nothing commits before the
  // registry exists, by which time the hub does.
  committer_ = std::make_unique<Committer>(
      store_.get(),
      [this](const std::vector<std::shared_ptr<const v1::SyncChange>>& changes) {
        hub_->Published(changes);
        if (coordinator_ != nullptr) coordinator_->Committed(changes);
      },
      [feed = feed_.get()](std::vector<v1::ScalingDecision> stored) {
        feed->Publish(std::move(stored));
      });
  SyncHubOptions sync = options_.sync;
  sync.max_replicas = options_.registry.settings_limits.max_replica_limit;
  hub_ = std::make_unique<SyncHub>(store_.get(), committer_.get(), sync);
  // Ownership needs a writable store (its epochs start from a stored generation); on a
  // full disk agents decide by their selectors until a restart with space.
  if (!store_->read_only()) {
    absl::StatusOr<std::unique_ptr<Coordinator>> coordinator =
        Coordinator::Start(store_.get(), committer_.get(), options_.ownership, RealClock::Get());
    if (!coordinator.ok()) return coordinator.status();
    coordinator_ = *std::move(coordinator);
    coordinator_->SetListener([hub = hub_.get()](std::vector<RouteDelivery> deliveries) {
      hub->DeliverRoutes(std::move(deliveries));
    });
    committer_->SetDecisionFence([coordinator = coordinator_.get()](
                                     const v1::ScalingDecision& d) { return coordinator->Fence(d); });
    hub_->SetCoordinator(coordinator_.get());
  }
  registry_ = std::make_unique<Registry>(store_.get(), committer_.get(), options_.registry,
                                         RealClock::Get());
  management_ = std::make_unique<Management>(registry_.get(), hub_.get(), coordinator_.get(),
                                             options_.ack_timeout);
  service_->SetBackends(management_.get(), hub_.get(), feed_.get());
  keda_ = std::make_unique<KedaScaler>(store_.get());
  scaler_service_->SetBackends(keda_.get(), feed_.get());
  if (rest_ != nullptr) rest_->SetManagement(management_.get());
  if (console_ != nullptr) {
    console_->SetChainletLookup([store = store_.get()](absl::string_view chain_id,
                                                       absl::string_view env_name,
                                                       absl::string_view chainlet_name) {
      absl::StatusOr<std::vector<std::optional<v1::ChainletState>>> found =
          store->GetChainlets(chain_id, env_name, {std::string(chainlet_name)});
      if (!found.ok()) return found.status();
      if (!found->front().has_value()) {
        return absl::NotFoundError(absl::StrCat("chainlet ", chain_id, "/", env_name, "/",
                                                chainlet_name, " not found"));
      }
      return absl::OkStatus();
    });
  }
  return absl::OkStatus();
}

void ControlPlaneServer::SetServing(bool serving) {
  serving_.store(serving);
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  health->SetServingStatus(serving);
  health->SetServingStatus(kServiceName, serving);
  health->SetServingStatus(kScalerServiceName, serving);
}

void ControlPlaneServer::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  if (server_ != nullptr) {
    SetServing(false);
    service_->FinishStreams();
    scaler_service_->FinishStreams();
    server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  }
  if (http_ != nullptr) http_->Stop();
  if (rest_ != nullptr) rest_->SetManagement(nullptr);
  if (console_ != nullptr) console_->SetChainletLookup(nullptr);
  if (service_ != nullptr) service_->SetBackends(nullptr, nullptr, nullptr);
  if (scaler_service_ != nullptr) scaler_service_->SetBackends(nullptr, nullptr);
  keda_.reset();
  management_.reset();
  registry_.reset();
  // The coordinator's thread writes through the committer and delivers to the hub: stop it
  // first; the object stays until the committer, whose listener it is, is gone.
  if (coordinator_ != nullptr) coordinator_->Stop();
  committer_.reset();  // drains queued writes, whose callbacks reach the hub and the feed
  coordinator_.reset();
  hub_.reset();
  feed_.reset();
  store_.reset();
}

ControlPlaneServer::~ControlPlaneServer() { Shutdown(absl::ZeroDuration()); }

}  // namespace chainscale
