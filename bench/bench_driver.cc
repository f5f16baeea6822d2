// chainscale-bench-driver: the client side of bench/run.py's measurements. Each mode
// drives a running control plane or agent (the real binaries) over loopback, one
// connection per client, and prints one JSON line with what it measured. run.py starts
// the processes, runs the references beside them and prints the table.
//
//   chainscale-bench-driver --mode=writes --control_plane=127.0.0.1:50051 --clients=8
//
// Modes:
//   fill            create --chains chains of --chainlets_per_chain chainlets (each in
//                   production and development), optionally with --window seconds
//   writes          --clients writers, each updating its own environment (or all one
//                   environment with --one_environment) back to back for --seconds
//   updates         one writer, sequential updates of one chainlet; --records FILE gets
//                   "start_ns end_ns status" per update (CLOCK_MONOTONIC)
//   stream-load     --streams StreamLoad streams over --chains × --chainlets_per_chain ×
//                   2 environments, --sources per chainlet, --batch reports per message
//   report-latency  back-to-back ReportLoad calls while reports flow, classified as
//                   during a decision tick, during a /metrics scrape, or between
//   get-chain       back-to-back GetChain calls for --seconds
//   wait-serving    polls grpc.health.v1 on --target until SERVING; prints when
//   wait-chainlet   polls GetScalingDecision on --target until the chainlet is known
#include <grpcpp/generic/generic_stub.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/bench_common.h"
#include "chainscale/v1/agent.grpc.pb.h"
#include "chainscale/v1/control_plane.grpc.pb.h"
#include "common/http_client.h"
#include "common/mutex_mode.h"

ABSL_FLAG(std::string, mode, "", "what to measure; see the file's comment");
ABSL_FLAG(std::string, control_plane, "127.0.0.1:50051", "control plane gRPC host:port");
ABSL_FLAG(std::string, target, "127.0.0.1:50061", "agent (or bare stream server) host:port");
ABSL_FLAG(std::string, metrics_address, "", "report-latency: agent HTTP host:port to scrape");
ABSL_FLAG(int, clients, 1, "concurrent clients, one connection each");
ABSL_FLAG(double, seconds, 10, "how long to measure");
ABSL_FLAG(int, count, 0, "updates: how many (0: for --seconds)");
ABSL_FLAG(bool, one_environment, false, "writes: every client updates the same environment");
ABSL_FLAG(std::string, chain_prefix, "bench-", "chain ids are <chain_prefix><n>");
ABSL_FLAG(int, chains, 1, "chains");
ABSL_FLAG(int, chainlets_per_chain, 10, "chainlets per chain, named c0, c1, ...");
ABSL_FLAG(int, window, 60, "fill: autoscaling_window of every chainlet");
ABSL_FLAG(std::string, chain, "", "updates, get-chain, wait-chainlet: the chain");
ABSL_FLAG(std::string, env, "production", "updates, wait-chainlet: the environment");
ABSL_FLAG(std::string, chainlet, "c0", "updates, wait-chainlet: the chainlet");
ABSL_FLAG(std::string, records, "", "updates: file for one line per update");
ABSL_FLAG(int, streams, 1, "stream-load: streams, one connection each");
ABSL_FLAG(int, sources, 4, "stream-load: reporting sources per chainlet");
ABSL_FLAG(int, batch, 32, "stream-load: reports per message");
ABSL_FLAG(double, rate, 0, "stream-load, report-latency: reports/s to send (0: as fast as possible)");
ABSL_FLAG(int, server_pid, 0, "stream-load: process whose CPU time is measured");
ABSL_FLAG(std::string, tick_chain, "", "report-latency: chain (1 chainlet) watched to see ticks");
ABSL_FLAG(double, scrape_every, 0, "report-latency: seconds between /metrics scrapes (0: none)");
ABSL_FLAG(double, timeout, 60, "wait-*: give up after this many seconds");

namespace chainscale::bench {
namespace {

using UpdateRequest = v1::UpdateChainletEnvironmentAutoscalingSettingsRequest;
using UpdateResponse = v1::UpdateChainletEnvironmentAutoscalingSettingsResponse;

[[noreturn]] void Fail(const std::string& what, const grpc::Status& status) {
  std::fprintf(stderr, "%s: %s (code %d)\n", what.c_str(), status.error_message().c_str(),
               static_cast<int>(status.error_code()));
  std::exit(1);
}

std::string ChainId(int i) { return absl::StrCat(absl::GetFlag(FLAGS_chain_prefix), i); }

const char* const kEnvironments[] = {"production", "development"};

// ---- fill ----------------------------------------------------------------------------

int Fill() {
  const int chains = absl::GetFlag(FLAGS_chains);
  const int per_chain = absl::GetFlag(FLAGS_chainlets_per_chain);
  const int window = absl::GetFlag(FLAGS_window);
  std::atomic<int> next{0};
  std::vector<std::thread> threads;
  const int64_t start = MonotonicNanos();
  for (int c = 0; c < absl::GetFlag(FLAGS_clients); ++c) {
    threads.emplace_back([&, c] {
      auto stub = v1::ControlPlane::NewStub(OwnChannel(absl::GetFlag(FLAGS_control_plane), c));
      for (int i = next++; i < chains; i = next++) {
        v1::CreateChainRequest request;
        request.set_chain_id(ChainId(i));
        for (int j = 0; j < per_chain; ++j) request.add_chainlet_names(absl::StrCat("c", j));
        grpc::ClientContext context;
        v1::Chain chain;
        grpc::Status status = stub->CreateChain(&context, request, &chain);
        if (!status.ok()) Fail("CreateChain " + ChainId(i), status);
        if (window == 60) continue;
        for (const char* env : kEnvironments) {
          UpdateRequest update;
          update.set_chain_id(ChainId(i));
          update.set_env_name(env);
          for (int j = 0; j < per_chain; ++j) {
            auto* u = update.add_updates();
            u->set_chainlet_name(absl::StrCat("c", j));
            u->mutable_autoscaling_settings()->set_autoscaling_window(window);
          }
          grpc::ClientContext update_context;
          UpdateResponse response;
          status = stub->UpdateChainletEnvironmentAutoscalingSettings(&update_context, update,
                                                                      &response);
          if (!status.ok()) Fail("update window of " + ChainId(i), status);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  JsonLine()
      .Add("mode", std::string("fill"))
      .Add("chainlets", int64_t{chains} * per_chain * 2)
      .Add("seconds", Millis(MonotonicNanos() - start) / 1000)
      .Print();
  return 0;
}

// ---- writes --------------------------------------------------------------------------

// Each client alternates one chainlet's max_replica between two values, so every update
// changes something and is written (never UNCHANGED).
int Writes() {
  const int clients = absl::GetFlag(FLAGS_clients);
  const bool one_env = absl::GetFlag(FLAGS_one_environment);
  const std::string chain_id = absl::StrCat("writes-", getpid());
  {
    auto stub = v1::ControlPlane::NewStub(OwnChannel(absl::GetFlag(FLAGS_control_plane), -1));
    v1::CreateChainRequest request;
    request.set_chain_id(chain_id);
    for (int i = 0; i < clients; ++i) request.add_chainlet_names(absl::StrCat("c", i));
    grpc::ClientContext context;
    v1::Chain chain;
    grpc::Status status = stub->CreateChain(&context, request, &chain);
    if (!status.ok()) Fail("CreateChain", status);
    for (int i = 0; i < clients && !one_env; ++i) {
      v1::CreateEnvironmentRequest env;
      env.set_chain_id(chain_id);
      env.set_env_name(absl::StrCat("e", i));
      grpc::ClientContext env_context;
      v1::ChainEnvironment created;
      status = stub->CreateEnvironment(&env_context, env, &created);
      if (!status.ok()) Fail("CreateEnvironment", status);
    }
  }
  std::mutex mu;
  std::vector<double> latencies;
  std::map<std::string, int64_t> statuses;
  std::vector<std::thread> threads;
  std::atomic<int> ready{0};
  std::atomic<int64_t> start{0};
  const int64_t duration = static_cast<int64_t>(absl::GetFlag(FLAGS_seconds) * 1e9);
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      auto stub = v1::ControlPlane::NewStub(OwnChannel(absl::GetFlag(FLAGS_control_plane), c));
      UpdateRequest request;
      request.set_chain_id(chain_id);
      request.set_env_name(one_env ? "production" : absl::StrCat("e", c));
      auto* update = request.add_updates();
      update->set_chainlet_name(absl::StrCat("c", one_env ? c : 0));
      std::vector<double> mine;
      std::map<std::string, int64_t> my_statuses;
      // Warm the connection up before the clock starts.
      {
        update->mutable_autoscaling_settings()->set_max_replica(7);
        grpc::ClientContext context;
        UpdateResponse response;
        grpc::Status status =
            stub->UpdateChainletEnvironmentAutoscalingSettings(&context, request, &response);
        if (!status.ok()) Fail("update", status);
      }
      if (++ready == clients) start = MonotonicNanos();
      while (start.load() == 0) std::this_thread::yield();
      const int64_t deadline = start.load() + duration;
      for (int i = 0; MonotonicNanos() < deadline; ++i) {
        update->mutable_autoscaling_settings()->set_max_replica(2 + i % 2);
        grpc::ClientContext context;
        UpdateResponse response;
        const int64_t t = MonotonicNanos();
        grpc::Status status =
            stub->UpdateChainletEnvironmentAutoscalingSettings(&context, request, &response);
        if (!status.ok()) Fail("update", status);
        mine.push_back(Millis(MonotonicNanos() - t));
        ++my_statuses[UpdateResponse::Status_Name(response.status())];
      }
      std::lock_guard<std::mutex> lock(mu);
      latencies.insert(latencies.end(), mine.begin(), mine.end());
      for (const auto& [k, v] : my_statuses) statuses[k] += v;
    });
  }
  for (auto& t : threads) t.join();
  const double elapsed = Millis(MonotonicNanos() - start.load()) / 1000;
  JsonLine line;
  line.Add("mode", std::string("writes"))
      .Add("clients", clients)
      .Add("one_environment", one_env ? 1 : 0)
      .Add("ops_per_s", latencies.size() / elapsed)
      .AddLatencies("", latencies);
  for (const auto& [k, v] : statuses) line.Add(absl::StrCat("status_", k), v);
  line.Print();
  return 0;
}

// ---- updates -------------------------------------------------------------------------

int Updates() {
  auto stub = v1::ControlPlane::NewStub(OwnChannel(absl::GetFlag(FLAGS_control_plane), 0));
  UpdateRequest request;
  request.set_chain_id(absl::GetFlag(FLAGS_chain));
  request.set_env_name(absl::GetFlag(FLAGS_env));
  auto* update = request.add_updates();
  update->set_chainlet_name(absl::GetFlag(FLAGS_chainlet));
  const int count = absl::GetFlag(FLAGS_count);
  const int64_t deadline =
      MonotonicNanos() + static_cast<int64_t>(absl::GetFlag(FLAGS_seconds) * 1e9);
  std::FILE* records = nullptr;
  if (!absl::GetFlag(FLAGS_records).empty()) {
    records = std::fopen(absl::GetFlag(FLAGS_records).c_str(), "w");
  }
  std::vector<double> latencies;
  std::map<std::string, int64_t> statuses;
  // Values cycle through 2..901 so consecutive updates always differ.
  for (int i = 0; count > 0 ? i < count : MonotonicNanos() < deadline; ++i) {
    update->mutable_autoscaling_settings()->set_max_replica(2 + i % 900);
    grpc::ClientContext context;
    UpdateResponse response;
    const int64_t t = MonotonicNanos();
    grpc::Status status =
        stub->UpdateChainletEnvironmentAutoscalingSettings(&context, request, &response);
    const int64_t end = MonotonicNanos();
    if (!status.ok()) Fail("update", status);
    latencies.push_back(Millis(end - t));
    ++statuses[UpdateResponse::Status_Name(response.status())];
    if (records != nullptr) {
      std::fprintf(records, "%lld %lld %s\n", static_cast<long long>(t),
                   static_cast<long long>(end),
                   UpdateResponse::Status_Name(response.status()).c_str());
    }
  }
  if (records != nullptr) std::fclose(records);
  JsonLine line;
  line.Add("mode", std::string("updates")).AddLatencies("", latencies);
  for (const auto& [k, v] : statuses) line.Add(absl::StrCat("status_", k), v);
  line.Print();
  return 0;
}

// ---- stream-load ---------------------------------------------------------------------

// The messages of one stream, serialized once: every (chainlet, source) pair the stream
// owns reports once per cycle, `batch` reports a message, with values that change from
// one cycle to the next.
struct StreamMessages {
  std::vector<grpc::ByteBuffer> messages;
  std::vector<int> reports;  // reports in each message
};

std::vector<StreamMessages> BuildMessages(int streams, int cycles) {
  const int chains = absl::GetFlag(FLAGS_chains);
  const int per_chain = absl::GetFlag(FLAGS_chainlets_per_chain);
  const int sources = absl::GetFlag(FLAGS_sources);
  const int batch = absl::GetFlag(FLAGS_batch);
  // Source s of chainlet k is owned by stream (k * sources + s) % streams: a stream is a
  // router or a group of replicas reporting for many chainlets.
  std::vector<std::vector<v1::LoadReport>> owned(streams);
  int64_t k = 0;
  for (int c = 0; c < chains; ++c) {
    for (const char* env : kEnvironments) {
      for (int j = 0; j < per_chain; ++j, ++k) {
        for (int s = 0; s < sources; ++s) {
          v1::LoadReport report;
          report.set_source_id(absl::StrCat("replica-", ChainId(c), "-c", j, "-", s));
          report.set_chain_id(ChainId(c));
          report.set_env_name(env);
          report.set_chainlet_name(absl::StrCat("c", j));
          owned[(k * sources + s) % streams].push_back(std::move(report));
        }
      }
    }
  }
  std::vector<StreamMessages> out(streams);
  for (int st = 0; st < streams; ++st) {
    uint64_t sequence = 0;
    for (int cycle = 0; cycle < cycles; ++cycle) {
      for (size_t first = 0; first < owned[st].size(); first += batch) {
        v1::StreamLoadRequest request;
        request.set_sequence(++sequence);
        for (size_t r = first; r < std::min(owned[st].size(), first + batch); ++r) {
          v1::LoadReport* report = request.add_reports();
          *report = owned[st][r];
          report->set_in_flight_requests(static_cast<double>((r * 7 + cycle * 3) % 13));
        }
        const std::string bytes = request.SerializeAsString();
        grpc::Slice slice(bytes);
        out[st].messages.emplace_back(&slice, 1);
        out[st].reports.push_back(request.reports_size());
      }
    }
  }
  return out;
}

// Paces senders to a total rate shared by every stream (when the rate is not 0).
class Pacer {
 public:
  explicit Pacer(double reports_per_second) : rate_(reports_per_second) {}
  // Sleeps until `reports` more may be sent.
  void Take(int reports) {
    if (rate_ <= 0) return;
    const int64_t sent = sent_.fetch_add(reports);
    const int64_t due = start_ + static_cast<int64_t>(sent / rate_ * 1e9);
    const int64_t now = MonotonicNanos();
    if (due > now) std::this_thread::sleep_for(std::chrono::nanoseconds(due - now));
  }

 private:
  const double rate_;
  const int64_t start_ = MonotonicNanos();
  std::atomic<int64_t> sent_{0};
};

// One StreamLoad stream through the callback API with pre-serialized messages: one write
// in flight, the next started from OnWriteDone, answers read as they come.
class LoadStream final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  // `pacer` may be null (as fast as the stream goes).
  LoadStream(std::shared_ptr<grpc::Channel> channel, const StreamMessages* messages,
             const std::atomic<bool>* stop, Pacer* pacer = nullptr)
      : stub_(std::move(channel)), messages_(messages), stop_(stop), pacer_(pacer) {}

  void Start() {
    stub_.PrepareBidiStreamingCall(&context_, "/chainscale.v1.Agent/StreamLoad",
                                   grpc::StubOptions(), this);
    StartRead(&in_);
    WriteNext();
    StartCall();
  }
  void OnWriteDone(bool ok) override {
    if (ok) WriteNext();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    std::vector<grpc::Slice> slices;
    (void)in_.Dump(&slices);
    std::string bytes;
    for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    v1::StreamLoadResponse response;
    if (response.ParseFromString(bytes)) {
      accepted_ += response.accepted();
      rejected_ += response.rejections_size();
      if (response.rejections_size() > 0 && first_rejection_.empty()) {
        first_rejection_ = response.rejections(0).message();
      }
    }
    StartRead(&in_);
  }
  void OnDone(const grpc::Status& status) override {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = status;
    done_ = true;
    cv_.notify_all();
  }
  void Await() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return done_; });
  }
  int64_t accepted() const { return accepted_; }
  int64_t rejected() const { return rejected_; }
  const std::string& first_rejection() const { return first_rejection_; }
  const grpc::Status& status() const { return status_; }

 private:
  void WriteNext() {
    if (stop_->load()) {
      StartWritesDone();
      return;
    }
    const size_t i = next_++ % messages_->messages.size();
    // Sleeping here holds one of the client's callback threads, never the server's.
    if (pacer_ != nullptr) pacer_->Take(messages_->reports[i]);
    StartWrite(&messages_->messages[i]);
  }

  grpc::GenericStub stub_;
  grpc::ClientContext context_;
  const StreamMessages* const messages_;
  const std::atomic<bool>* const stop_;
  Pacer* const pacer_;
  size_t next_ = 0;
  grpc::ByteBuffer in_;
  int64_t accepted_ = 0;  // touched only by reads, one at a time
  int64_t rejected_ = 0;
  std::string first_rejection_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  grpc::Status status_;
};

int StreamLoad() {
  const int streams = absl::GetFlag(FLAGS_streams);
  const std::vector<StreamMessages> messages = BuildMessages(streams, 2);
  int64_t per_cycle = 0;
  for (const auto& m : messages) {
    for (int r : m.reports) per_cycle += r;
  }
  std::atomic<bool> stop{false};
  std::vector<std::unique_ptr<LoadStream>> load;
  for (int s = 0; s < streams; ++s) {
    load.push_back(std::make_unique<LoadStream>(OwnChannel(absl::GetFlag(FLAGS_target), s),
                                                &messages[s], &stop));
  }
  const int pid = absl::GetFlag(FLAGS_server_pid);
  const double cpu_before = pid > 0 ? ProcessCpuSeconds(pid) : 0;
  const int64_t start = MonotonicNanos();
  for (auto& l : load) l->Start();
  std::this_thread::sleep_for(std::chrono::duration<double>(absl::GetFlag(FLAGS_seconds)));
  stop = true;
  int64_t accepted = 0, rejected = 0;
  for (auto& l : load) {
    l->Await();
    if (!l->status().ok()) Fail("StreamLoad", l->status());
    accepted += l->accepted();
    rejected += l->rejected();
  }
  const double elapsed = Millis(MonotonicNanos() - start) / 1000;
  const double cpu = pid > 0 ? ProcessCpuSeconds(pid) - cpu_before : 0;
  if (rejected > 0) {
    for (auto& l : load) {
      if (!l->first_rejection().empty()) {
        std::fprintf(stderr, "rejected: %s\n", l->first_rejection().c_str());
        break;
      }
    }
  }
  JsonLine()
      .Add("mode", std::string("stream-load"))
      .Add("streams", streams)
      .Add("reports_per_cycle", per_cycle)
      .Add("accepted", accepted)
      .Add("rejected", rejected)
      .Add("seconds", elapsed)
      .Add("reports_per_s", accepted / elapsed)
      .Add("server_cpu_s", cpu)
      .Add("server_cpu_s_per_million", accepted > 0 ? cpu / (accepted / 1e6) : 0)
      .Print();
  return 0;
}

// ---- report-latency ------------------------------------------------------------------

// A closed interval of CLOCK_MONOTONIC nanoseconds.
struct Span {
  int64_t begin, end;
  bool Overlaps(int64_t b, int64_t e) const { return b <= end && e >= begin; }
};

bool OverlapsAny(const std::vector<Span>& spans, int64_t b, int64_t e) {
  for (const Span& s : spans) {
    if (s.Overlaps(b, e)) return true;
  }
  return false;
}

// While reports flow at --rate over every chainlet (one paced stream), times back-to-back
// ReportLoad calls of one report and sorts each by what it overlapped: a decision tick
// (seen through a watch on --tick_chain: from the tick's decided_at until its decision
// arrives), a /metrics scrape (from the request until the body is read), or neither.
int ReportLatency() {
  const std::string target = absl::GetFlag(FLAGS_target);
  const std::vector<StreamMessages> messages = BuildMessages(1, 2);
  std::atomic<bool> stop{false};
  Pacer pacer(absl::GetFlag(FLAGS_rate));
  LoadStream feeder(OwnChannel(target, 1000), &messages[0], &stop, &pacer);
  feeder.Start();

  // Ticks, seen without asking the agent for extra work (a watch with include_unchanged
  // would make every tick copy every decision): a poller asks every 5 ms for the decision
  // of --tick_chain's one chainlet, whose decided_at is the start of the last tick. A tick
  // spans from that decided_at (wall clock, converted to CLOCK_MONOTONIC) until the poll
  // that first saw it returned: the tick ends no later than that, within 5 ms.
  const int64_t wall_minus_mono = absl::ToUnixNanos(absl::Now()) - MonotonicNanos();
  std::mutex spans_mu;
  std::vector<Span> ticks, scrapes;
  std::thread poller([&] {
    auto agent = v1::Agent::NewStub(OwnChannel(target, 1001));
    v1::GetScalingDecisionRequest request;
    request.set_chain_id(absl::GetFlag(FLAGS_tick_chain));
    request.set_env_name("production");
    request.set_chainlet_name("c0");
    int64_t last_decided = 0;
    while (!stop.load()) {
      grpc::ClientContext context;
      v1::ScalingDecision decision;
      if (agent->GetScalingDecision(&context, request, &decision).ok()) {
        const int64_t seen = MonotonicNanos();
        const int64_t decided = decision.decided_at().seconds() * 1'000'000'000 +
                                decision.decided_at().nanos() - wall_minus_mono;
        if (decided != last_decided && last_decided != 0) {
          std::lock_guard<std::mutex> lock(spans_mu);
          ticks.push_back({std::min(decided, seen), seen});
        }
        last_decided = decided;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  std::thread scraper;
  const double scrape_every = absl::GetFlag(FLAGS_scrape_every);
  int64_t scrape_bytes = 0;
  if (scrape_every > 0) {
    scraper = std::thread([&] {
      const std::string address = absl::GetFlag(FLAGS_metrics_address);
      chainscale::HttpClientOptions options;
      options.timeout = absl::Seconds(60);
      while (!stop.load()) {
        const int64_t begin = MonotonicNanos();
        auto result = chainscale::HttpCall(address, {"GET", "/metrics", {}, ""}, options);
        const int64_t end = MonotonicNanos();
        if (result.ok() && result->status == 200) {
          scrape_bytes = static_cast<int64_t>(result->body.size());
          std::lock_guard<std::mutex> lock(spans_mu);
          scrapes.push_back({begin, end});
        }
        std::this_thread::sleep_for(std::chrono::duration<double>(scrape_every));
      }
    });
  }

  struct Call {
    int64_t begin, end;
  };
  std::vector<Call> calls;
  auto reporter = v1::Agent::NewStub(OwnChannel(target, 1002));
  v1::ReportLoadRequest request;
  v1::LoadReport* report = request.add_reports();
  report->set_source_id("latency-probe");
  report->set_chain_id(ChainId(0));
  report->set_env_name("production");
  report->set_chainlet_name("c0");
  report->set_in_flight_requests(1);
  // One second for the feeder and the watch to start before timing.
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const int64_t deadline =
      MonotonicNanos() + static_cast<int64_t>(absl::GetFlag(FLAGS_seconds) * 1e9);
  while (MonotonicNanos() < deadline) {
    grpc::ClientContext context;
    v1::ReportLoadResponse response;
    const int64_t begin = MonotonicNanos();
    grpc::Status status = reporter->ReportLoad(&context, request, &response);
    if (!status.ok()) Fail("ReportLoad", status);
    calls.push_back({begin, MonotonicNanos()});
  }
  stop = true;
  feeder.Await();
  if (scraper.joinable()) scraper.join();
  poller.join();

  std::vector<double> between, during_tick, during_scrape, all;
  std::map<int64_t, double> slowest_per_second;
  for (const Call& c : calls) {
    const double ms = Millis(c.end - c.begin);
    all.push_back(ms);
    double& slowest = slowest_per_second[c.begin / 1'000'000'000];
    slowest = std::max(slowest, ms);
    if (OverlapsAny(scrapes, c.begin, c.end)) {
      during_scrape.push_back(ms);
    } else if (OverlapsAny(ticks, c.begin, c.end)) {
      during_tick.push_back(ms);
    } else {
      between.push_back(ms);
    }
  }
  std::vector<double> slowest;
  for (const auto& [second, ms] : slowest_per_second) slowest.push_back(ms);
  std::vector<double> tick_ms;
  for (const Span& t : ticks) tick_ms.push_back(Millis(t.end - t.begin));
  JsonLine()
      .Add("mode", std::string("report-latency"))
      .Add("ticks_seen", static_cast<int64_t>(ticks.size()))
      .Add("tick_p50_span_ms", Percentile(tick_ms, 0.5))
      .Add("longest_tick_ms", Percentile(tick_ms, 1.0))
      .Add("scrapes", static_cast<int64_t>(scrapes.size()))
      .Add("scrape_bytes", scrape_bytes)
      .Add("feeder_reports", feeder.accepted())
      .AddLatencies("all_", all)
      .AddLatencies("between_", between)
      .AddLatencies("tick_", during_tick)
      .AddLatencies("scrape_", during_scrape)
      .Add("slowest_per_second_median_ms", Percentile(slowest, 0.5))
      .Print();
  return 0;
}

// ---- get-chain -----------------------------------------------------------------------

// Back-to-back GetChain calls; a stall is a call above 20 ms (a call otherwise takes well
// under 1 ms on loopback).
int GetChain() {
  auto stub = v1::ControlPlane::NewStub(OwnChannel(absl::GetFlag(FLAGS_control_plane), 0));
  v1::GetChainRequest request;
  request.set_chain_id(absl::GetFlag(FLAGS_chain));
  std::vector<double> latencies;
  std::vector<int64_t> stall_starts;
  const int64_t deadline =
      MonotonicNanos() + static_cast<int64_t>(absl::GetFlag(FLAGS_seconds) * 1e9);
  while (MonotonicNanos() < deadline) {
    grpc::ClientContext context;
    v1::Chain chain;
    const int64_t begin = MonotonicNanos();
    grpc::Status status = stub->GetChain(&context, request, &chain);
    if (!status.ok()) Fail("GetChain", status);
    const double ms = Millis(MonotonicNanos() - begin);
    latencies.push_back(ms);
    if (ms > 20) stall_starts.push_back(begin);
  }
  std::vector<double> gaps;
  for (size_t i = 1; i < stall_starts.size(); ++i) {
    gaps.push_back(Millis(stall_starts[i] - stall_starts[i - 1]));
  }
  JsonLine()
      .Add("mode", std::string("get-chain"))
      .AddLatencies("", latencies)
      .Add("stalls_over_20ms", static_cast<int64_t>(stall_starts.size()))
      .Add("stall_gap_median_ms", Percentile(gaps, 0.5))
      .Print();
  return 0;
}

// ---- wait-serving, wait-chainlet -----------------------------------------------------

// grpc.health.v1.Health/Check for the whole server, in raw bytes (its C++ stubs are not
// installed): an empty request; SERVING is the answer 08 01 (field 1, value 1).
bool Serving(grpc::GenericStub& stub) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  grpc::Slice empty("");
  grpc::ByteBuffer request(&empty, 1), response;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request,
                 &response, [&](grpc::Status s) {
                   std::lock_guard<std::mutex> lock(mu);
                   status = s;
                   done = true;
                   cv.notify_all();
                 });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  if (!status.ok()) return false;
  std::vector<grpc::Slice> slices;
  (void)response.Dump(&slices);
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return bytes == std::string("\x08\x01", 2);
}

int WaitServing() {
  grpc::GenericStub stub(OwnChannel(absl::GetFlag(FLAGS_target), 0));
  const int64_t deadline =
      MonotonicNanos() + static_cast<int64_t>(absl::GetFlag(FLAGS_timeout) * 1e9);
  while (MonotonicNanos() < deadline) {
    if (Serving(stub)) {
      JsonLine().Add("mode", std::string("wait-serving")).Add("serving_ns", MonotonicNanos()).Print();
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  std::fprintf(stderr, "%s not SERVING\n", absl::GetFlag(FLAGS_target).c_str());
  return 1;
}

int WaitChainlet() {
  auto stub = v1::Agent::NewStub(OwnChannel(absl::GetFlag(FLAGS_target), 0));
  v1::GetScalingDecisionRequest request;
  request.set_chain_id(absl::GetFlag(FLAGS_chain));
  request.set_env_name(absl::GetFlag(FLAGS_env));
  request.set_chainlet_name(absl::GetFlag(FLAGS_chainlet));
  const int64_t deadline =
      MonotonicNanos() + static_cast<int64_t>(absl::GetFlag(FLAGS_timeout) * 1e9);
  while (MonotonicNanos() < deadline) {
    grpc::ClientContext context;
    v1::ScalingDecision decision;
    if (stub->GetScalingDecision(&context, request, &decision).ok()) {
      JsonLine().Add("mode", std::string("wait-chainlet")).Add("known_ns", MonotonicNanos()).Print();
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::fprintf(stderr, "chainlet never known\n");
  return 1;
}

int Run() {
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode == "fill") return Fill();
  if (mode == "writes") return Writes();
  if (mode == "updates") return Updates();
  if (mode == "stream-load") return StreamLoad();
  if (mode == "report-latency") return ReportLatency();
  if (mode == "get-chain") return GetChain();
  if (mode == "wait-serving") return WaitServing();
  if (mode == "wait-chainlet") return WaitChainlet();
  std::fprintf(stderr, "unknown --mode=%s\n", mode.c_str());
  return 2;
}

}  // namespace
}  // namespace chainscale::bench

int main(int argc, char** argv) {
  chainscale::DisableMutexDeadlockDetection();
  absl::ParseCommandLine(argc, argv);
  return chainscale::bench::Run();
}
