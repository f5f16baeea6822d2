#include "tools/actuator/actuator.h"

#include <map>
#include <random>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/http_port.h"
#include "common/keepalive.h"
#include "common/log.h"
#include "tools/actuator/docker_backend.h"
#include "tools/actuator/process_backend.h"

namespace chainscale {
namespace {

absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(const ActuatorOptions& options,
                                                     const TargetSpec& spec) {
  if (const auto* process = std::get_if<ProcessBackendSpec>(&spec.backend)) {
    absl::StatusOr<std::unique_ptr<ProcessBackend>> backend = ProcessBackend::Create(
        {spec.name(), process->command, options.state_dir,
         absl::StrCat(spec.chain_id, ".", spec.env_name, ".", spec.chainlet_name)});
    if (!backend.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--target=", spec.name(), ": ", backend.status().message()));
    }
    return std::unique_ptr<Backend>(*std::move(backend));
  }
  const auto& docker = std::get<DockerBackendSpec>(spec.backend);
  DockerBackendOptions docker_options;
  docker_options.target = spec.name();
  docker_options.name_prefix =
      absl::StrCat(spec.chain_id, "-", spec.env_name, "-", spec.chainlet_name);
  docker_options.docker_host = options.docker_host;
  docker_options.label = docker.label;
  docker_options.template_container = docker.template_container;
  absl::StatusOr<std::unique_ptr<DockerBackend>> backend = DockerBackend::Create(docker_options);
  if (!backend.ok()) return backend.status();
  return std::unique_ptr<Backend>(*std::move(backend));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Actuator>> Actuator::Start(ActuatorOptions options) {
  if (options.targets.empty()) {
    return absl::InvalidArgumentError(
        "no --target: name each chainlet to actuate, "
        "--target=<chain_id>/<env_name>/<chainlet_name>=<backend>");
  }
  std::set<std::string> names;
  for (const TargetSpec& spec : options.targets) {
    if (!names.insert(spec.name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("--target names ", spec.name(), " twice: one backend per chainlet"));
    }
  }
  if (options.reconcile.drain_period < absl::ZeroDuration() ||
      options.reconcile.resync_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "--drain_period must not be negative and --resync_interval must be positive");
  }
  std::unique_ptr<Actuator> actuator(new Actuator(std::move(options)));
  if (absl::Status s = actuator->StartAll(); !s.ok()) {
    actuator->Shutdown();
    return s;
  }
  LogInfo("actuator serving", {{"http", absl::StrCat(actuator->http_port_)},
                               {"control_plane", actuator->options_.control_plane},
                               {"targets", absl::StrCat(actuator->targets_.size())},
                               {"drain_period",
                                absl::FormatDuration(actuator->options_.reconcile.drain_period)}});
  return actuator;
}

absl::Status Actuator::StartAll() {
  for (const TargetSpec& spec : options_.targets) {
    absl::StatusOr<std::unique_ptr<Backend>> backend = MakeBackend(options_, spec);
    if (!backend.ok()) return backend.status();
    auto target = std::make_unique<Target>();
    target->spec = spec;
    target->backend = *std::move(backend);
    ReconcilerOptions reconcile = options_.reconcile;
    reconcile.seed = std::random_device{}();  // targets retry at their own moments
    target->reconciler =
        std::make_unique<Reconciler>(spec.name(), target->backend.get(), reconcile);
    targets_.push_back(std::move(target));
  }

  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      MakeChannelCredentials(options_.tls);
  if (!credentials.ok()) return credentials.status();
  grpc::ChannelArguments args;
  ApplyChannelKeepalive(args);
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(options_.control_plane, *credentials, args);

  absl::StatusOr<HttpServerOptions> http_options =
      HttpOptionsFor({options_.tls.cert, options_.tls.key, ""}, options_.http_max_connections);
  if (!http_options.ok()) return http_options.status();

  for (const std::unique_ptr<Target>& target : targets_) {
    LogInfo("actuating", {{"chainlet", target->spec.name()},
                          {"backend", target->backend->kind()}});
    Reconciler* reconciler = target->reconciler.get();
    target->thread = std::thread([reconciler] {
      while (!reconciler->shut_down()) reconciler->WaitUntil(reconciler->Reconcile());
    });
  }
  // One feed stream per chain environment.
  std::map<std::pair<std::string, std::string>, std::map<std::string, Reconciler*>> by_env;
  for (const std::unique_ptr<Target>& target : targets_) {
    by_env[{target->spec.chain_id, target->spec.env_name}][target->spec.chainlet_name] =
        target->reconciler.get();
  }
  for (auto& [env, reconcilers] : by_env) {
    DecisionFollowerOptions follower;
    follower.chain_id = env.first;
    follower.env_name = env.second;
    follower.channel = channel;
    follower.api_key = options_.api_key;
    follower.reconnect = options_.reconnect;
    followers_.push_back(std::make_unique<DecisionFollower>(follower, std::move(reconcilers)));
    followers_.back()->Start();
  }

  // Last: the collector reads targets_ and followers_, which no longer change.
  http_ = std::make_unique<HttpServer>(*http_options);
  metrics_.AddCollector([this](std::string* out) { CollectMetrics(out); });
  AddStatusRoutes(*http_, metrics_, serving_);
  absl::StatusOr<int> port = http_->Start(options_.http_listen);
  if (!port.ok()) return port.status();
  http_port_ = *port;
  serving_ = true;
  return absl::OkStatus();
}

Actuator::~Actuator() { Shutdown(); }

void Actuator::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  serving_ = false;
  for (const std::unique_ptr<DecisionFollower>& follower : followers_) follower->Stop();
  for (const std::unique_ptr<Target>& target : targets_) target->reconciler->Shutdown();
  for (const std::unique_ptr<Target>& target : targets_) {
    if (target->thread.joinable()) target->thread.join();
  }
  if (http_ != nullptr) http_->Stop();
}

void Actuator::CollectMetrics(std::string* out) const {
  std::vector<std::pair<const Target*, TargetStatus>> statuses;
  for (const std::unique_ptr<Target>& target : targets_) {
    statuses.emplace_back(target.get(), target->reconciler->status());
  }
  auto labels = [](const Target& t, MetricLabels extra = {}) {
    MetricLabels all = {{"chain", t.spec.chain_id},
                        {"environment", t.spec.env_name},
                        {"chainlet", t.spec.chainlet_name}};
    all.insert(all.end(), extra.begin(), extra.end());
    return RenderLabels(all);
  };
  // A family with one sample per target; targets without a value (no decision yet, the
  // cap not read yet) have none.
  auto family = [&](const char* name, const char* type, const char* help, auto value) {
    absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
    for (const auto& [target, status] : statuses) {
      const std::optional<double> v = value(status);
      if (v.has_value()) absl::StrAppend(out, name, labels(*target), " ", *v, "\n");
    }
  };
  using Opt = std::optional<double>;
  auto of = [](std::optional<int> v) { return v.has_value() ? Opt(*v) : std::nullopt; };
  family("chainscale_actuator_decided_replicas", "gauge",
         "Replicas the chainlet's latest decision asks for.",
         [&](const TargetStatus& s) { return of(s.decided); });
  family("chainscale_actuator_max_replica", "gauge",
         "The chainlet's max_replica: the actuator never runs more.",
         [&](const TargetStatus& s) { return of(s.max_replica); });
  family("chainscale_actuator_desired_replicas", "gauge",
         "Replicas the actuator aims at: the decision, capped at max_replica.",
         [&](const TargetStatus& s) { return of(s.desired); });
  family("chainscale_actuator_running_replicas", "gauge",
         "Replicas alive and not asked to stop.",
         [](const TargetStatus& s) { return Opt(s.running); });
  family("chainscale_actuator_draining_replicas", "gauge",
         "Replicas asked to stop and still alive (within their drain period).",
         [](const TargetStatus& s) { return Opt(s.draining); });
  family("chainscale_actuator_replica_starts_total", "counter", "Replicas started.",
         [](const TargetStatus& s) { return Opt(s.starts); });
  family("chainscale_actuator_replica_stops_total", "counter",
         "Replicas that went after being asked to stop (killed ones included).",
         [](const TargetStatus& s) { return Opt(s.stops); });
  family("chainscale_actuator_replica_kills_total", "counter",
         "Replicas killed at the end of their drain period.",
         [](const TargetStatus& s) { return Opt(s.kills); });
  family("chainscale_actuator_replica_exits_total", "counter",
         "Replicas that exited without being asked to (and were replaced).",
         [](const TargetStatus& s) { return Opt(s.exits); });
  family("chainscale_actuator_backend_failures_total", "counter",
         "Backend calls that failed (each retried with backoff).",
         [](const TargetStatus& s) { return Opt(s.failures); });
  absl::StrAppend(out,
                  "# HELP chainscale_actuator_backend_up 1 while the target's backend works, 0 "
                  "while its calls fail (the log says why).\n"
                  "# TYPE chainscale_actuator_backend_up gauge\n");
  for (const auto& [target, status] : statuses) {
    absl::StrAppend(out, "chainscale_actuator_backend_up",
                    labels(*target, {{"backend", target->backend->kind()}}), " ",
                    status.backend_up ? 1 : 0, "\n");
  }
  absl::StrAppend(out,
                  "# HELP chainscale_actuator_feed_connected 1 while the chain environment's "
                  "decision feed stream is up.\n"
                  "# TYPE chainscale_actuator_feed_connected gauge\n");
  for (const std::unique_ptr<DecisionFollower>& follower : followers_) {
    absl::StrAppend(out, "chainscale_actuator_feed_connected",
                    RenderLabels({{"chain", follower->chain_id()},
                                  {"environment", follower->env_name()}}),
                    " ", follower->connected() ? 1 : 0, "\n");
  }
}

}  // namespace chainscale
