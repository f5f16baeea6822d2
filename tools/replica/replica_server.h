// ReplicaServer: chainscale-replica wired together. POST /v1/completions parses the body
// (completions.h) and hands the request to the ReplicaScheduler, holding its connection
// (an asynchronous HttpServer route, no thread) until the scheduler answers; a timer
// thread calls the scheduler's Advance when its next request is due. GET /metrics shows
// the load under vLLM's names, GET /healthz the serving state, and with agents given the
// load is offered every interval to a ReportStream (tools/reporter/report_stream.h), which
// streams it to them.
#ifndef CHAINSCALE_TOOLS_REPLICA_REPLICA_SERVER_H_
#define CHAINSCALE_TOOLS_REPLICA_REPLICA_SERVER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/http_server.h"
#include "common/metrics.h"
#include "tools/replica/completions.h"
#include "tools/replica/scheduler.h"
#include "tools/reporter/report_stream.h"

namespace chainscale {

// Where and as what the replica reports its own load (DESIGN §6).
struct ReplicaReports {
  ReportStreamOptions stream;  // the agents, their credentials and the key
  std::string chain_id;
  std::string env_name = "production";
  std::string chainlet_name;
  std::string source_id;
  absl::Duration interval = absl::Seconds(1);
};

struct ReplicaOptions {
  std::string http_listen = "127.0.0.1:8000";  // host:port; port 0 picks one
  // Share http_listen with other replicas started the same way (SO_REUSEPORT): the kernel
  // spreads connections over them, as a load balancer in front of them would.
  bool reuse_port = false;
  // Served model name: the `model` of every answer and the model_name label of /metrics.
  std::string model_name = "chainscale-replica";
  SchedulerOptions scheduler;
  // Prompt and completion tokens one request may have in all (vLLM's max_model_len).
  int64_t max_model_len = 32768;
  // On SIGTERM, how long held requests get to finish; those left are answered 503.
  absl::Duration drain_timeout = absl::Seconds(30);
  // Set: report the load to agents: running + waiting requests and their tokens.
  std::optional<ReplicaReports> reports;
};

class ReplicaServer {
 public:
  // INVALID_ARGUMENT naming the option for bad options; UNAVAILABLE when the address
  // cannot be bound.
  static absl::StatusOr<std::unique_ptr<ReplicaServer>> Start(ReplicaOptions options);
  ~ReplicaServer();  // Shutdown

  int port() const { return port_; }

  // The graceful end: /healthz says NOT_SERVING, the port stops accepting connections,
  // new requests on open ones are refused (503), and held requests get drain_timeout to
  // finish; those still held then are answered 503. A last report (0 in flight) goes to
  // the agent, and everything stops. Idempotent; not from a handler.
  void Shutdown();

  ReplicaLoad Load() const { return scheduler_->Load(); }

 private:
  explicit ReplicaServer(ReplicaOptions options);
  absl::Status StartServing();
  void HandleCompletion(const HttpRequest& request, HttpResponder responder);
  HttpResponse Answer(uint64_t id, const CompletionRequest& request, RequestOutcome outcome) const;
  void RunCompletions() ABSL_LOCKS_EXCLUDED(mu_);
  void WakeCompletions() ABSL_LOCKS_EXCLUDED(mu_);
  void RunReports() ABSL_LOCKS_EXCLUDED(mu_);
  v1::LoadReport CurrentReport() const;
  void CollectMetrics(std::string* out) const;

  const ReplicaOptions options_;
  std::unique_ptr<ReplicaScheduler> scheduler_;
  std::unique_ptr<ReportStream> reports_;
  Metrics metrics_;
  std::atomic<bool> serving_{false};
  std::unique_ptr<HttpServer> http_;
  int port_ = 0;
  std::atomic<uint64_t> next_id_{0};
  std::atomic<int64_t> bad_requests_{0};
  std::thread completions_;
  std::thread reporting_;
  bool shut_down_ = false;  // Shutdown's caller's only

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;  // a request started: its end may come first
  bool reports_stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace chainscale

#endif  // CHAINSCALE_TOOLS_REPLICA_REPLICA_SERVER_H_
