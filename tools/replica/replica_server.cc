#include "tools/replica/replica_server.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/http_port.h"
#include "common/log.h"
#include "common/names.h"

namespace chainscale {
namespace {

// Room on the HTTP port beyond the requests that may be held (each holds its
// connection): scrapes, health checks and the 503s of a full queue.
constexpr int kSpareConnections = 64;
constexpr int kMaxConcurrency = 10'000;
constexpr int kMaxQueue = 100'000;
constexpr size_t kMaxNameBytes = 256;
// After the drain timeout, how long the 503s of the requests still held get to be written.
constexpr absl::Duration kAbortGrace = absl::Seconds(5);
// How long the last report (0 in flight) may take to be answered on the way out.
constexpr absl::Duration kLastReportTimeout = absl::Seconds(2);

absl::Status Invalid(absl::string_view what) { return absl::InvalidArgumentError(what); }

absl::Status CheckOptions(const ReplicaOptions& o) {
  const SchedulerOptions& s = o.scheduler;
  if (s.max_concurrency < 1 || s.max_concurrency > kMaxConcurrency) {
    return Invalid(absl::StrCat("--max_concurrency must be 1 to ", kMaxConcurrency));
  }
  if (s.max_queue < 0 || s.max_queue > kMaxQueue) {
    return Invalid(absl::StrCat("--max_queue must be 0 to ", kMaxQueue));
  }
  if (!(s.time_scale > 0) || !std::isfinite(s.time_scale)) {
    return Invalid("--time_scale must be a positive number");
  }
  if (s.model.overhead < absl::ZeroDuration() ||
      s.model.per_context_token < absl::ZeroDuration() ||
      s.model.per_generated_token < absl::ZeroDuration()) {
    return Invalid("--overhead, --per_context_token and --per_generated_token must not be negative");
  }
  if (o.max_model_len < 2) return Invalid("--max_model_len must be at least 2");
  if (o.drain_timeout < absl::ZeroDuration()) return Invalid("--drain_timeout must not be negative");
  // The name is a label value and a JSON string: printable text, of a bounded size.
  if (o.model_name.empty() || o.model_name.size() > kMaxNameBytes) {
    return Invalid(absl::StrCat("--model_name must be 1 to ", kMaxNameBytes, " bytes"));
  }
  if (std::optional<std::string> problem = DisplayNameProblem(o.model_name)) {
    return Invalid(absl::StrCat("--model_name: ", *problem));
  }
  if (!o.reports.has_value()) return absl::OkStatus();
  const ReplicaReports& r = *o.reports;
  if (r.stream.agents.empty()) return Invalid("--agent must name at least one host:port");
  for (const std::string& agent : r.stream.agents) {
    if (absl::Status s = SplitHostPort(agent).status(); !s.ok()) {
      return Invalid(absl::StrCat("--agent: ", s.message()));
    }
  }
  for (const auto& [flag, problem] :
       {std::make_pair("--chain_id", ChainIdProblem(r.chain_id)),
        std::make_pair("--env_name", EnvironmentNameProblem(r.env_name)),
        std::make_pair("--chainlet_name", ChainletNameProblem(r.chainlet_name))}) {
    if (problem.has_value()) {
      return Invalid(absl::StrCat(flag, " (needed with --agent): ", *problem));
    }
  }
  if (r.source_id.empty() || r.source_id.size() > kMaxNameBytes) {
    return Invalid(absl::StrCat("--source_id must be 1 to ", kMaxNameBytes, " bytes"));
  }
  if (r.interval <= absl::ZeroDuration()) return Invalid("--report_interval must be positive");
  return absl::OkStatus();
}

}  // namespace

ReplicaServer::ReplicaServer(ReplicaOptions options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<ReplicaServer>> ReplicaServer::Start(ReplicaOptions options) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  std::unique_ptr<ReplicaServer> server(new ReplicaServer(std::move(options)));
  if (absl::Status s = server->StartServing(); !s.ok()) {
    server->Shutdown();
    return s;
  }
  const ReplicaOptions& o = server->options_;
  LogInfo("replica serving",
          {{"http", absl::StrCat(server->port_)},
           {"model", o.model_name},
           {"max_concurrency", absl::StrCat(o.scheduler.max_concurrency)},
           {"max_queue", absl::StrCat(o.scheduler.max_queue)},
           {"time_scale", absl::StrCat(o.scheduler.time_scale)},
           {"agents",
            o.reports.has_value() ? absl::StrJoin(o.reports->stream.agents, ",") : "none"}});
  return server;
}

absl::Status ReplicaServer::StartServing() {
  scheduler_ = std::make_unique<ReplicaScheduler>(options_.scheduler, RealClock::Get());
  completions_ = std::thread([this] { RunCompletions(); });
  metrics_.AddCollector([this](std::string* out) { CollectMetrics(out); });

  HttpServerOptions http_options;
  http_options.max_connections =
      options_.scheduler.max_concurrency + options_.scheduler.max_queue + kSpareConnections;
  // Held requests take no worker: workers only parse bodies and render /metrics.
  http_options.worker_threads = 4;
  http_options.reuse_port = options_.reuse_port;
  http_ = std::make_unique<HttpServer>(http_options);
  HttpRoute completions;
  completions.methods = {"POST"};
  completions.path = "/v1/completions";
  completions.async_handler = [this](const HttpRequest& request, HttpResponder responder) {
    HandleCompletion(request, std::move(responder));
  };
  http_->Route(std::move(completions));
  AddStatusRoutes(*http_, metrics_, serving_);
  absl::StatusOr<int> port = http_->Start(options_.http_listen);
  if (!port.ok()) return port.status();
  port_ = *port;
  serving_ = true;

  if (options_.reports.has_value()) {
    reports_ = std::make_unique<ReportStream>(options_.reports->stream);
    reports_->Start();
    reporting_ = std::thread([this] { RunReports(); });
  }
  return absl::OkStatus();
}

v1::LoadReport ReplicaServer::CurrentReport() const {
  const ReplicaReports& r = *options_.reports;
  const ReplicaLoad load = scheduler_->Load();
  v1::LoadReport report;
  report.set_source_id(r.source_id);
  report.set_chain_id(r.chain_id);
  report.set_env_name(r.env_name);
  report.set_chainlet_name(r.chainlet_name);
  // A request waiting in the queue is load the replica has not served yet, as vLLM's
  // num_requests_running + num_requests_waiting.
  report.set_in_flight_requests(static_cast<double>(load.running + load.waiting));
  report.set_in_flight_tokens(load.tokens_in_flight);
  return report;
}

void ReplicaServer::RunReports() {
  while (true) {
    reports_->Offer(CurrentReport());
    absl::MutexLock lock(&mu_);
    if (mu_.AwaitWithTimeout(absl::Condition(&reports_stopping_), options_.reports->interval)) {
      return;
    }
  }
}

ReplicaServer::~ReplicaServer() { Shutdown(); }

void ReplicaServer::HandleCompletion(const HttpRequest& request, HttpResponder responder) {
  absl::StatusOr<CompletionRequest> parsed =
      ParseCompletionRequest(request.body, options_.max_model_len);
  if (!parsed.ok()) {
    bad_requests_.fetch_add(1);
    responder.Send(HttpError(400, parsed.status().message()));
    return;
  }
  const uint64_t id = next_id_.fetch_add(1) + 1;
  const RequestTokens tokens = parsed->tokens;
  const SubmitResult result = scheduler_->Submit(
      tokens, [this, id, completion = *std::move(parsed),
               responder = std::move(responder)](RequestOutcome outcome) mutable {
        responder.Send(Answer(id, completion, outcome));
      });
  // Its end may come before the one the timer waits for.
  if (result == SubmitResult::kRunning) WakeCompletions();
}

HttpResponse ReplicaServer::Answer(uint64_t id, const CompletionRequest& request,
                                   RequestOutcome outcome) const {
  HttpResponse response;
  switch (outcome) {
    case RequestOutcome::kCompleted: {
      absl::StatusOr<std::string> body = CompletionResponseJson(
          absl::StrCat("cmpl-", id), absl::Now(), options_.model_name, request);
      if (!body.ok()) return HttpError(500, body.status().message());
      response.content_type = "application/json";
      response.body = *std::move(body);
      return response;
    }
    case RequestOutcome::kQueueFull:
      response = HttpError(503, absl::StrCat("the queue is full: ", options_.scheduler.max_concurrency,
                                             " requests running and ", options_.scheduler.max_queue,
                                             " waiting; retry later or elsewhere"));
      break;
    case RequestOutcome::kDraining:
      response = HttpError(503, "the replica is shutting down; send the request elsewhere");
      break;
    case RequestOutcome::kAborted:
      response = HttpError(503, "the replica shut down before the request finished");
      break;
  }
  response.headers.emplace_back("Retry-After", "1");
  return response;
}

void ReplicaServer::RunCompletions() {
  while (true) {
    const absl::Time due = scheduler_->NextCompletion();
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || woken_; };
      mu_.AwaitWithDeadline(absl::Condition(&ready), due);
      if (stopping_) return;
      woken_ = false;
    }
    scheduler_->Advance();
  }
}

void ReplicaServer::WakeCompletions() {
  absl::MutexLock lock(&mu_);
  woken_ = true;
}

void ReplicaServer::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  serving_ = false;
  if (http_ != nullptr && port_ != 0) {
    http_->StopAccepting();
    scheduler_->Drain();
    const ReplicaLoad held = scheduler_->Load();
    LogInfo("draining", {{"running", absl::StrCat(held.running)},
                         {"waiting", absl::StrCat(held.waiting)},
                         {"drain_timeout", absl::FormatDuration(options_.drain_timeout)}});
    if (!http_->AwaitAnswered(options_.drain_timeout)) {
      const ReplicaLoad left = scheduler_->Load();
      LogWarning("drain timeout passed; answering the requests left with 503",
                 {{"running", absl::StrCat(left.running)},
                  {"waiting", absl::StrCat(left.waiting)}});
      scheduler_->AbortAll();
      if (!http_->AwaitAnswered(kAbortGrace)) {
        LogWarning("some answers were still being written when the port closed",
                   {{"grace", absl::FormatDuration(kAbortGrace)}});
      }
    }
  }
  {
    absl::MutexLock lock(&mu_);
    reports_stopping_ = true;
  }
  if (reporting_.joinable()) reporting_.join();
  if (reports_ != nullptr) {
    // The load is 0 now: the last report says so.
    reports_->Offer(CurrentReport());
    if (!reports_->Flush(kLastReportTimeout)) {
      LogWarning("the last load report was not answered in time",
                 {{"timeout", absl::FormatDuration(kLastReportTimeout)}});
    }
    reports_->Stop();
  }
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (completions_.joinable()) completions_.join();
  if (http_ != nullptr) http_->Stop();
}

void ReplicaServer::CollectMetrics(std::string* out) const {
  const ReplicaLoad load = scheduler_->Load();
  const std::string& model = options_.model_name;
  auto family = [out](absl::string_view name, absl::string_view type, absl::string_view help) {
    absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
  };
  auto sample = [out](absl::string_view name, const MetricLabels& labels, auto value) {
    absl::StrAppend(out, name, RenderLabels(labels), " ", value, "\n");
  };
  const MetricLabels labels = {{"model_name", model}};
  // vLLM's names, help and labels, so dashboards and scrapers made for vLLM read these.
  family("vllm:num_requests_running", "gauge", "Number of requests currently running.");
  sample("vllm:num_requests_running", labels, load.running);
  family("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.");
  sample("vllm:num_requests_waiting", labels, load.waiting);
  family("vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.");
  sample("vllm:prompt_tokens_total", labels, load.prompt_tokens_total);
  family("vllm:generation_tokens_total", "counter", "Number of generation tokens processed.");
  sample("vllm:generation_tokens_total", labels, load.generation_tokens_total);
  family("vllm:request_success_total", "counter", "Count of successfully processed requests.");
  sample("vllm:request_success_total", {{"model_name", model}, {"finished_reason", "length"}},
         load.completed);
  // What vLLM does not show.
  family("chainscale_replica_in_flight_tokens", "gauge",
         "Prompt and completion tokens of the requests running or waiting.");
  sample("chainscale_replica_in_flight_tokens", labels, load.tokens_in_flight);
  family("chainscale_replica_requests_total", "counter",
         "Completion requests answered, by outcome: completed, bad_request (400), queue_full, "
         "draining and aborted (503).");
  const std::pair<const char*, int64_t> outcomes[] = {
      {"completed", load.completed},   {"bad_request", bad_requests_.load()},
      {"queue_full", load.queue_full}, {"draining", load.draining},
      {"aborted", load.aborted}};
  for (const auto& [outcome, count] : outcomes) {
    sample("chainscale_replica_requests_total", {{"model_name", model}, {"outcome", outcome}},
           count);
  }
  if (reports_ == nullptr) return;
  const ReportStream::Stats stats = reports_->stats();
  family("chainscale_replica_reports_total", "counter",
         "Load reports the agents took in (accepted) or refused (rejected).");
  sample("chainscale_replica_reports_total", {{"model_name", model}, {"result", "accepted"}},
         stats.reports_accepted);
  sample("chainscale_replica_reports_total", {{"model_name", model}, {"result", "rejected"}},
         stats.reports_rejected);
  family("chainscale_replica_agent_connected", "gauge",
         "1 while a report stream to an agent is open.");
  sample("chainscale_replica_agent_connected", labels, stats.connected ? 1 : 0);
}

}  // namespace chainscale
