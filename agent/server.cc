#include "agent/server.h"

#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/server_builder.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/http_port.h"
#include "common/keepalive.h"
#include "common/log.h"
#include "common/server_reflection.h"

namespace chainscale {
namespace {

constexpr char kServiceName[] = "chainscale.v1.Agent";
constexpr const char* kStatusNames[] = {"ACCEPTED", "QUEUED", "UNCHANGED"};

}  // namespace

AgentServer::AgentServer(AgentOptions options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<AgentServer>> AgentServer::Start(AgentOptions options) {
  if (options.api_keys.empty() && !options.insecure) {
    return absl::FailedPreconditionError(
        "no API keys configured: pass --api_keys_file or set CHAINSCALE_API_KEYS "
        "(or --insecure for a local demo without keys)");
  }
  if (options.agent_id.empty()) {
    return absl::InvalidArgumentError("--agent_id must not be empty");
  }
  if (options.decision_interval <= absl::ZeroDuration() ||
      options.report_staleness < absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        "--decision_interval must be positive and --report_staleness at least 1s");
  }
  std::unique_ptr<AgentServer> server(new AgentServer(std::move(options)));
  if (absl::Status s = server->StartServing(); !s.ok()) {
    server->Shutdown(absl::ZeroDuration());
    return s;
  }
  LogInfo("agent serving",
          {{"grpc", absl::StrCat(server->grpc_port_)},
           {"http", absl::StrCat(server->http_port_)},
           {"agent_id", server->options_.agent_id},
           {"control_plane", server->options_.control_plane},
           {"decision_interval", absl::FormatDuration(server->options_.decision_interval)},
           {"auth", server->options_.api_keys.empty() ? "off (--insecure)" : "api keys"}});
  return server;
}

namespace {

std::string AdvertiseAddress(const AgentOptions& options, int port) {
  if (!options.advertise_address.empty()) return options.advertise_address;
  std::string host = options.listen.substr(0, options.listen.rfind(':'));
  if (host.empty() || host == "0.0.0.0" || host == "[::]" || host == "::") {
    char name[256] = {};
    host = gethostname(name, sizeof(name) - 1) == 0 ? name : "localhost";
  }
  return absl::StrCat(host, ":", port);
}

}  // namespace

absl::Status AgentServer::StartServing() {
  DecisionLoopOptions loop_options;
  loop_options.agent_id = options_.agent_id;
  loop_options.selector = options_.selector;
  loop_options.decision_interval = options_.decision_interval;
  loop_options.report_staleness_seconds =
      static_cast<int32_t>(absl::ToInt64Seconds(options_.report_staleness));
  loop_ = std::make_unique<DecisionLoop>(loop_options, *options_.clock);
  cache_.AddListener([this](const AppliedUpdate& update) {
    loop_->Apply(update);
    if (update.snapshot && !serving_.load()) SetServing(true);
  });

  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> channel_credentials =
      MakeChannelCredentials(options_.tls);
  if (!channel_credentials.ok()) return channel_credentials.status();
  metrics_.Describe("chainscale_rpc_requests_total", "counter",
                    "Agent RPCs handled, by method and status code.");
  metrics_.Describe("chainscale_rpc_duration_seconds", "summary",
                    "Time spent in agent RPCs, by method.");
  metrics_.Describe("chainscale_load_streams_total", "counter", "StreamLoad streams opened.");
  metrics_.Describe("chainscale_watch_streams_total", "counter",
                    "WatchScalingDecisions streams opened.");
  metrics_.AddCollector([this](std::string* out) { CollectMetrics(out); });

  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials(options_.tls);
  if (!credentials.ok()) return credentials.status();
  service_ = std::make_unique<AgentService>(options_.api_keys, loop_.get(), &metrics_,
                                            options_.watch);
  // Reports for another agent's environments go to its owner (DESIGN §11), presented with
  // this agent's first key: agents of one pool accept the same keys.
  routes_ = std::make_unique<OwnerRoutes>(options_.agent_id);
  ForwarderOptions forwarder_options;
  forwarder_options.channel.credentials = *channel_credentials;
  forwarder_options.token = options_.api_keys.first();
  forwarder_ = std::make_unique<ReportForwarder>(forwarder_options);
  service_->SetRouting({[routes = routes_.get()](const std::string& chain_id,
                                                 const std::string& env_name) {
                          std::optional<v1::EnvironmentRoute> route =
                              routes->Find(chain_id, env_name);
                          return route.has_value() ? route->address() : std::string();
                        },
                        forwarder_.get()});
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  ApplyServerKeepalive(builder);
  AddServerReflection(builder);
  builder.AddListeningPort(options_.listen, *credentials, &grpc_port_);
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || grpc_port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen for gRPC on ", options_.listen));
  }
  SetServing(serving_.load());

  SyncClientOptions sync_options;
  sync_options.control_plane = options_.control_plane;
  sync_options.credentials = *channel_credentials;
  sync_options.agent_id = options_.agent_id;
  sync_options.token = options_.agent_token;
  sync_options.selector = options_.selector;
  sync_options.backoff = options_.reconnect;
  sync_options.advertise_address = AdvertiseAddress(options_, grpc_port_);
  sync_options.on_owners = [this](const v1::SyncOwners& owners) {
    if (std::optional<OwnerRoutes::Update> update = routes_->Apply(owners)) {
      loop_->SetOwned(update->changes, update->reset);
    }
  };
  sync_ = std::make_unique<SyncClient>(sync_options, &cache_);

  if (!options_.http_listen.empty()) {
    absl::StatusOr<HttpServerOptions> http_options =
        HttpOptionsFor(options_.tls, options_.http_max_connections);
    if (!http_options.ok()) return http_options.status();
    http_ = std::make_unique<HttpServer>(*std::move(http_options));
    AddStatusRoutes(*http_, metrics_, serving_);
    absl::StatusOr<int> port = http_->Start(options_.http_listen);
    if (!port.ok()) return port.status();
    http_port_ = *port;
  }
  sync_->Start();
  if (options_.run_ticker) ticker_ = std::thread([this] { RunTicker(); });
  return absl::OkStatus();
}

void AgentServer::SetServing(bool serving) {
  serving_.store(serving);
  if (server_ == nullptr) return;
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  health->SetServingStatus(serving);
  health->SetServingStatus(kServiceName, serving);
}

void AgentServer::Tick() {
  // An owner cut off from the control plane for the lease TTL holds: its work may have
  // been handed to another agent, and two must never decide one environment.
  if (loop_->owned_only()) {
    loop_->SetLeaseExpired(absl::Now() - sync_->last_heard() > options_.lease_ttl);
  }
  for (const DecisionBatchPtr& changed : loop_->Tick()) sync_->SendDecisions(changed->decisions);
}

void AgentServer::RunTicker() {
  // Ticks are scheduled on a fixed grid so a slow tick does not shift the next ones.
  absl::Time next = absl::Now() + options_.decision_interval;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithDeadline(absl::Condition(&stopping_), next)) return;
    }
    Tick();
    next += options_.decision_interval;
    const absl::Time now = absl::Now();
    if (next < now) next = now + options_.decision_interval;  // skip missed ticks
  }
}

void AgentServer::CollectMetrics(std::string* out) const {
  const std::vector<ChainletLoad> loads = loop_->Loads(options_.metrics_max_chainlets);
  auto family = [&](const char* name, const char* type, const char* help, auto value) {
    absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
    for (const ChainletLoad& l : loads) {
      absl::StrAppend(out, name,
                      RenderLabels({{"chain", l.chain_id},
                                    {"environment", l.env_name},
                                    {"chainlet", l.chainlet_name}}),
                      " ", value(l), "\n");
    }
  };
  family("chainscale_concurrent_requests", "gauge",
         "In-flight requests reported now, summed over sources.",
         [](const ChainletLoad& l) { return l.in_flight_requests; });
  family("chainscale_in_flight_tokens", "gauge",
         "In-flight tokens reported now, summed over sources.",
         [](const ChainletLoad& l) { return l.in_flight_tokens; });
  family("chainscale_desired_replicas", "gauge", "Replicas the latest decision asks for.",
         [](const ChainletLoad& l) { return l.desired_replicas; });
  const size_t served = loop_->size();
  absl::StrAppend(out,
                  "# HELP chainscale_chainlets Chainlets this agent serves.\n"
                  "# TYPE chainscale_chainlets gauge\nchainscale_chainlets ",
                  served,
                  "\n# HELP chainscale_metrics_chainlets_omitted Chainlets without per-chainlet "
                  "series here (beyond --metrics_max_chainlets); ListScalingDecisions has "
                  "them all.\n# TYPE chainscale_metrics_chainlets_omitted gauge\n"
                  "chainscale_metrics_chainlets_omitted ",
                  served > loads.size() ? served - loads.size() : 0, "\n");
  const std::array<int64_t, 3> counts = loop_->DecisionCounts();
  absl::StrAppend(out,
                  "# HELP chainscale_decisions_total Decisions made, by status.\n"
                  "# TYPE chainscale_decisions_total counter\n");
  for (int i = 0; i < 3; ++i) {
    absl::StrAppend(out, "chainscale_decisions_total{status=\"", kStatusNames[i], "\"} ",
                    counts[i], "\n");
  }
  absl::StrAppend(out,
                  "# HELP chainscale_settings_revision Settings revision applied from the "
                  "control plane.\n# TYPE chainscale_settings_revision gauge\n"
                  "chainscale_settings_revision ",
                  cache_.applied_revision(),
                  "\n# HELP chainscale_sync_connected 1 while the Sync stream is up.\n"
                  "# TYPE chainscale_sync_connected gauge\nchainscale_sync_connected ",
                  sync_->connected() ? 1 : 0,
                  "\n# HELP chainscale_owned_environments Chain environments this agent owns "
                  "(decides).\n# TYPE chainscale_owned_environments gauge\n"
                  "chainscale_owned_environments ",
                  routes_->owned(),
                  "\n# HELP chainscale_lease_expired 1 while the agent holds every count: no "
                  "word from the control plane for the lease TTL.\n"
                  "# TYPE chainscale_lease_expired gauge\nchainscale_lease_expired ",
                  loop_->lease_expired() ? 1 : 0, "\n");
  const ForwarderStats forwarded = forwarder_->Stats();
  absl::StrAppend(
      out,
      "# HELP chainscale_forwarded_reports_total Reports for another agent's environments, "
      "by what became of them.\n# TYPE chainscale_forwarded_reports_total counter\n",
      "chainscale_forwarded_reports_total{result=\"accepted\"} ", forwarded.accepted, "\n",
      "chainscale_forwarded_reports_total{result=\"rejected\"} ", forwarded.rejected, "\n",
      "chainscale_forwarded_reports_total{result=\"unavailable\"} ",
      forwarded.unreachable + forwarded.buffer_full + forwarded.shutting_down, "\n",
      "# HELP chainscale_forwarded_reports_held Reports waiting for their owner.\n"
      "# TYPE chainscale_forwarded_reports_held gauge\nchainscale_forwarded_reports_held ",
      forwarded.held_reports, "\n");
}

void AgentServer::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (ticker_.joinable()) ticker_.join();
  if (server_ != nullptr) {
    SetServing(false);
    service_->EndStreams();
    forwarder_->Shutdown();  // reports waiting on an owner are answered UNAVAILABLE
    server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  }
  if (http_ != nullptr) http_->Stop();
  if (sync_ != nullptr) sync_->Stop();
}

AgentServer::~AgentServer() { Shutdown(absl::ZeroDuration()); }

}  // namespace chainscale
