// HttpLoad: replays a request trace as real HTTP requests against model replicas
// (chainscale-replica, or any server of the OpenAI/vLLM completions API): each trace row
// becomes a `POST /v1/completions` with a prompt of its context tokens (that many words)
// and `max_tokens` its generated tokens, sent at its arrival time (divided by
// `time_scale`). The target's host name is resolved to every address it has, again every
// `resolve_every` (replicas come and go), and requests go round robin over them.
//
// It measures what users of the replicas get: latency percentiles, errors by kind, and
// queueing — the part of each request's latency beyond its service time under the same
// model the replicas use (tools/simulator/trace.h), summed as queued request-seconds.
#ifndef CHAINSCALE_TOOLS_LOADGEN_HTTP_LOAD_H_
#define CHAINSCALE_TOOLS_LOADGEN_HTTP_LOAD_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tools/simulator/trace.h"

namespace chainscale {

struct HttpLoadOptions {
  std::string target;  // host:port of the replicas; the host may resolve to many
  absl::Duration resolve_every = absl::Seconds(2);
  double time_scale = 1;  // trace time runs this many times faster; service times shrink alike
  ServiceTimeModel model;  // the replicas' model, to tell queueing from service
  std::string model_name = "chainscale-replica";
  absl::Duration duration = absl::InfiniteDuration();
  // Requests in flight at once (one thread each); an arrival beyond it is not sent and is
  // counted as "client_limit".
  int max_in_flight = 256;
  absl::Duration request_timeout = absl::Seconds(120);
  absl::Duration print_every = absl::Seconds(10);  // progress lines; zero: none
};

// What the replay saw. Times are wall-clock; multiply by time_scale for trace time.
struct HttpLoadSummary {
  int64_t sent = 0;
  int64_t ok = 0;
  std::map<std::string, int64_t> errors;  // "503", "UNAVAILABLE", "client_limit", ...
  double p50_ms = 0, p90_ms = 0, p99_ms = 0, max_ms = 0;  // of the answered requests
  double queued_seconds = 0;  // sum over answered requests of latency beyond service time
  double seconds = 0;         // wall time of the replay
  int64_t addresses_seen = 0;  // distinct addresses requests went to

  std::string Json() const;  // one line
};

// Resolves "host:port" to "ip:port" for every address of the host.
using Resolver = std::function<absl::StatusOr<std::vector<std::string>>(const std::string&)>;
absl::StatusOr<std::vector<std::string>> ResolveAll(const std::string& host_port);

// The body of the request for `r`.
std::string CompletionRequestBody(const TraceRequest& r, const std::string& model_name);

class HttpLoad {
 public:
  HttpLoad(HttpLoadOptions options, std::vector<TraceRequest> trace, std::ostream& out,
           Resolver resolver = ResolveAll);

  // Replays until the trace ends, the duration passes or `stop` is set, then waits for
  // the requests in flight (each bounded by request_timeout).
  HttpLoadSummary Run(const std::atomic<bool>& stop);

 private:
  const HttpLoadOptions options_;
  const std::vector<TraceRequest> trace_;
  std::ostream& out_;
  const Resolver resolver_;
};

}  // namespace chainscale

#endif  // CHAINSCALE_TOOLS_LOADGEN_HTTP_LOAD_H_
