#include "tools/loadgen/http_load.h"

#include <google/protobuf/struct.pb.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <memory>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "common/http_client.h"
#include "common/http_server.h"
#include "common/json_print.h"
#include "common/worker_pool.h"

namespace chainscale {
namespace {

std::string Elapsed(absl::Duration d) {
  const int64_t s = absl::ToInt64Seconds(d);
  return absl::StrFormat("%02d:%02d:%02d", s / 3600, s / 60 % 60, s % 60);
}

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t i = static_cast<size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(i, sorted.size() - 1)];
}

// What the replay has seen so far, shared by the request threads.
class Tally {
 public:
  void Answered(const std::string& address, double latency_ms, double queued_s) {
    absl::MutexLock lock(&mu_);
    ++ok_;
    latencies_ms_.push_back(latency_ms);
    queued_s_ += queued_s;
    addresses_.insert(address);
  }
  void Failed(const std::string& address, const std::string& kind) {
    absl::MutexLock lock(&mu_);
    ++errors_[kind];
    if (!address.empty()) addresses_.insert(address);
  }
  int64_t ok() const {
    absl::MutexLock lock(&mu_);
    return ok_;
  }
  int64_t failed() const {
    absl::MutexLock lock(&mu_);
    int64_t n = 0;
    for (const auto& [kind, count] : errors_) n += count;
    return n;
  }
  void Fill(HttpLoadSummary& summary) const {
    absl::MutexLock lock(&mu_);
    summary.ok = ok_;
    summary.errors = errors_;
    summary.queued_seconds = queued_s_;
    summary.addresses_seen = static_cast<int64_t>(addresses_.size());
    std::vector<double> sorted = latencies_ms_;
    std::sort(sorted.begin(), sorted.end());
    summary.p50_ms = Percentile(sorted, 0.50);
    summary.p90_ms = Percentile(sorted, 0.90);
    summary.p99_ms = Percentile(sorted, 0.99);
    summary.max_ms = sorted.empty() ? 0 : sorted.back();
  }

 private:
  mutable absl::Mutex mu_;
  int64_t ok_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, int64_t> errors_ ABSL_GUARDED_BY(mu_);
  std::vector<double> latencies_ms_ ABSL_GUARDED_BY(mu_);
  double queued_s_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<std::string> addresses_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

namespace {

std::string ToJson(const google::protobuf::Struct& s) {
  std::string out;
  // Only a string that is not UTF-8 fails to print (a --model name, say): the body is then
  // empty, and the replica's 400 is counted like any other error.
  if (!PrintJson(s, google::protobuf::util::JsonPrintOptions(), &out).ok()) out.clear();
  return out;
}

}  // namespace

std::string HttpLoadSummary::Json() const {
  google::protobuf::Struct s;
  auto& f = *s.mutable_fields();
  f["sent"].set_number_value(static_cast<double>(sent));
  f["ok"].set_number_value(static_cast<double>(ok));
  auto& e = *f["errors"].mutable_struct_value()->mutable_fields();
  for (const auto& [kind, count] : errors) e[kind].set_number_value(static_cast<double>(count));
  f["p50_ms"].set_number_value(p50_ms);
  f["p90_ms"].set_number_value(p90_ms);
  f["p99_ms"].set_number_value(p99_ms);
  f["max_ms"].set_number_value(max_ms);
  f["queued_seconds"].set_number_value(queued_seconds);
  f["seconds"].set_number_value(seconds);
  f["addresses_seen"].set_number_value(static_cast<double>(addresses_seen));
  return ToJson(s);
}

absl::StatusOr<std::vector<std::string>> ResolveAll(const std::string& host_port) {
  absl::StatusOr<std::pair<std::string, int>> split = SplitHostPort(host_port);
  if (!split.ok()) return split.status();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(split->first.c_str(), std::to_string(split->second).c_str(), &hints,
                             &found);
  if (rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot resolve ", split->first, ": ", gai_strerror(rc)));
  }
  std::vector<std::string> addresses;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    char host[NI_MAXHOST];
    if (getnameinfo(a->ai_addr, a->ai_addrlen, host, sizeof(host), nullptr, 0,
                    NI_NUMERICHOST) != 0) {
      continue;
    }
    std::string address = a->ai_family == AF_INET6
                              ? absl::StrCat("[", host, "]:", split->second)
                              : absl::StrCat(host, ":", split->second);
    if (std::find(addresses.begin(), addresses.end(), address) == addresses.end()) {
      addresses.push_back(std::move(address));
    }
  }
  freeaddrinfo(found);
  std::sort(addresses.begin(), addresses.end());
  return addresses;
}

std::string CompletionRequestBody(const TraceRequest& r, const std::string& model_name) {
  // A prompt of ContextTokens words "tok", 4 × N - 1 bytes: chainscale-replica counts a
  // prompt's tokens as its bytes / 4, rounded up, which gives N back.
  std::string prompt;
  prompt.reserve(static_cast<size_t>(r.context_tokens) * 4);
  for (int64_t i = 0; i < r.context_tokens; ++i) absl::StrAppend(&prompt, i == 0 ? "" : " ", "tok");
  google::protobuf::Struct body;
  auto& f = *body.mutable_fields();
  f["model"].set_string_value(model_name);
  f["prompt"].set_string_value(std::move(prompt));
  f["max_tokens"].set_number_value(static_cast<double>(r.generated_tokens));
  return ToJson(body);
}

HttpLoad::HttpLoad(HttpLoadOptions options, std::vector<TraceRequest> trace, std::ostream& out,
                   Resolver resolver)
    : options_(std::move(options)),
      trace_(std::move(trace)),
      out_(out),
      resolver_(std::move(resolver)) {}

HttpLoadSummary HttpLoad::Run(const std::atomic<bool>& stop) {
  HttpLoadSummary summary;
  Tally tally;
  std::atomic<int> in_flight{0};
  const absl::Time start = absl::Now();
  std::vector<std::string> addresses;
  absl::Time resolved_at = absl::InfinitePast();
  std::string resolve_error;
  size_t next = 0;
  absl::Time next_print = start + options_.print_every;
  const double scale = options_.time_scale > 0 ? options_.time_scale : 1;
  {
    // Destroyed before the summary is taken: runs what is queued, then joins.
    WorkerPool pool(std::max(1, options_.max_in_flight));
    const absl::Time trace_start = trace_.empty() ? absl::UnixEpoch() : trace_.front().arrival;
    for (const TraceRequest& r : trace_) {
      const absl::Duration offset = (r.arrival - trace_start) / scale;
      if (offset > options_.duration) break;
      // Pace to the request's arrival, looking at `stop` at least every 100 ms.
      while (!stop.load() && absl::Now() < start + offset) {
        std::this_thread::sleep_for(absl::ToChronoNanoseconds(
            std::min(start + offset - absl::Now(), absl::Milliseconds(100))));
      }
      if (stop.load()) break;
      const absl::Time now = absl::Now();
      if (now - resolved_at >= options_.resolve_every) {
        absl::StatusOr<std::vector<std::string>> found = resolver_(options_.target);
        resolved_at = now;
        if (found.ok() && !found->empty()) {
          if (*found != addresses) {
            out_ << Elapsed(now - start) << "  " << options_.target << ": " << found->size()
                 << " address(es)\n";
          }
          addresses = *std::move(found);
          resolve_error.clear();
        } else {
          const std::string error =
              found.ok() ? "no address" : std::string(found.status().message());
          if (error != resolve_error) out_ << Elapsed(now - start) << "  " << error << "\n";
          resolve_error = error;
          addresses.clear();  // no replica now (scaled to zero, or not yet started)
        }
      }
      ++summary.sent;
      if (addresses.empty()) {
        tally.Failed("", "no_address");
        continue;
      }
      if (in_flight.load() >= options_.max_in_flight) {
        tally.Failed("", "client_limit");
        continue;
      }
      const std::string address = addresses[next++ % addresses.size()];
      in_flight.fetch_add(1);
      const double service_s = absl::ToDoubleSeconds(options_.model.ServiceTime(r)) / scale;
      pool.Schedule([&, address, service_s, body = CompletionRequestBody(r, options_.model_name)] {
        HttpClientRequest request;
        request.method = "POST";
        request.target = "/v1/completions";
        request.headers = {{"Content-Type", "application/json"}};
        request.body = body;
        HttpClientOptions client;
        client.timeout = options_.request_timeout;
        client.max_response_bytes = 1 << 20;
        const absl::Time sent_at = absl::Now();
        absl::StatusOr<HttpClientResponse> response = HttpCall(address, request, client);
        const double latency_s = absl::ToDoubleSeconds(absl::Now() - sent_at);
        if (!response.ok()) {
          tally.Failed(address, absl::StatusCodeToString(response.status().code()));
        } else if (response->status != 200) {
          tally.Failed(address, std::to_string(response->status));
        } else {
          tally.Answered(address, latency_s * 1000, std::max(0.0, latency_s - service_s));
        }
        in_flight.fetch_sub(1);
      });
      if (options_.print_every > absl::ZeroDuration() && now >= next_print) {
        next_print = now + options_.print_every;
        out_ << Elapsed(now - start) << "  sent " << summary.sent << ", ok " << tally.ok()
             << ", failed " << tally.failed() << ", in flight " << in_flight.load()
             << ", addresses " << addresses.size() << "\n";
        out_.flush();
      }
    }
  }
  tally.Fill(summary);
  summary.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return summary;
}

}  // namespace chainscale
