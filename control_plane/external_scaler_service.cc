#include "control_plane/external_scaler_service.h"

#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/write_only_stream.h"

namespace chainscale {
namespace {

using externalscaler::IsActiveResponse;

absl::Status StillOpening() {
  return absl::UnavailableError("the control plane is still opening its store");
}

// A store read that failed for another reason than a missing chainlet is logged here, once.
void LogIfUnexpected(const absl::Status& status, const ScaledChainlet& chainlet) {
  if (status.ok() || absl::IsNotFound(status)) return;
  LogWarning("cannot read a chainlet for KEDA", {{"chain", chainlet.chain_id},
                                                 {"environment", chainlet.env_name},
                                                 {"chainlet", chainlet.chainlet_name},
                                                 {"error", status.ToString()}});
}

// StreamIsActive: whether the chainlet should run (desired replicas above zero), sent at
// once and then whenever it changes. The initial state is read from the store on the
// worker pool; from then on the decision feed tells the stream of every stored decision.
//
// Registered with the feed before the read: a decision the read missed is offered later.
// An offer wins over the read (the read may be older than a decision already offered;
// every decision newer than that offer is offered after it). Per stream the state is one
// flag, the latest: a client that reads slowly gets the current activity, not every flip
// (memory per stream is bounded whatever the decision rate).
//
// The read holds the WriteGate as a write does, so the stream never finishes while the
// read runs: OnDone, which frees the stream, comes after it.
class ActivityStream final : public WriteOnlyStream<IsActiveResponse>, public FeedSink {
 public:
  ActivityStream(grpc::CallbackServerContext* context, absl::StatusOr<ScaledChainlet> admitted,
                 const KedaScaler* scaler, DecisionFeed* feed, StreamSet* streams,
                 WorkerPool* workers, Metrics* metrics)
      : WriteOnlyStream(context),
        scaler_(scaler),
        feed_(feed),
        streams_(streams),
        metrics_(metrics),
        start_(absl::Now()) {
    if (!streams_->Add(this)) {
      End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
      return;
    }
    if (!admitted.ok()) {
      End(ToGrpcStatus(admitted.status()));
      return;
    }
    if (scaler_ == nullptr || feed_ == nullptr) {
      End(ToGrpcStatus(StillOpening()));
      return;
    }
    chainlet_ = *std::move(admitted);
    {
      absl::MutexLock lock(&mu_);
      gate_.Started();  // the initial read
    }
    registered_ = true;
    feed_->AddSink(this, "", -1);
    workers->Schedule([this] { ReadInitialState(); });
  }

  // The state comes from the store read, not from the feed's position.
  void Begin(const FeedStart&, const FeedBatch&) override {}

  void Offer(const FeedBatch& batch) override {
    absl::MutexLock lock(&mu_);
    if (gate_.ending()) return;
    for (const FeedEventPtr& event : batch) {
      const v1::ScalingDecision& d = event->decision;
      if (d.chainlet_name() == chainlet_.chainlet_name && d.env_name() == chainlet_.env_name &&
          d.chain_id() == chainlet_.chain_id) {
        active_ = d.desired_replicas() > 0;
      }
    }
    WriteNextLocked();
  }

  void OnDone() override {
    if (registered_) feed_->RemoveSink(this);
    streams_->Remove(this);
    grpc::StatusCode code;
    {
      absl::MutexLock lock(&mu_);
      code = end_code_;
    }
    metrics_->RecordRpc("StreamIsActive",
                        absl::StatusCodeToString(static_cast<absl::StatusCode>(code)),
                        absl::Now() - start_);
    delete this;
  }

 private:
  void ReadInitialState() {
    const absl::StatusOr<int32_t> desired = scaler_->DesiredReplicas(chainlet_);
    LogIfUnexpected(desired.status(), chainlet_);
    absl::MutexLock lock(&mu_);
    if (std::optional<grpc::Status> end = gate_.Completed()) {
      Finish(*end);
      return;
    }
    if (!desired.ok()) {
      EndLocked(ToGrpcStatus(desired.status()));
      return;
    }
    if (!active_.has_value()) active_ = *desired > 0;
    read_ = true;
    WriteNextLocked();
  }

  // Sends the activity when it differs from what the client last got.
  void WriteNextLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!read_ || !gate_.CanWrite() || !active_.has_value()) return;
    if (sent_.has_value() && *sent_ == *active_) return;
    sent_ = active_;
    out_.set_result(*active_);
    gate_.Started();
    StartWrite(&out_);
  }

  void OnEndingLocked(const grpc::Status& status) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    end_code_ = status.error_code();
  }

  const KedaScaler* const scaler_;
  DecisionFeed* const feed_;
  StreamSet* const streams_;
  Metrics* const metrics_;
  const absl::Time start_;
  ScaledChainlet chainlet_;  // set in the constructor, read-only after
  bool registered_ = false;
  bool read_ ABSL_GUARDED_BY(mu_) = false;  // the initial state is known
  std::optional<bool> active_ ABSL_GUARDED_BY(mu_);
  std::optional<bool> sent_ ABSL_GUARDED_BY(mu_);
  IsActiveResponse out_ ABSL_GUARDED_BY(mu_);
  grpc::StatusCode end_code_ ABSL_GUARDED_BY(mu_) = grpc::StatusCode::OK;
};

}  // namespace

ExternalScalerService::ExternalScalerService(ApiKeys api_keys, Metrics* metrics)
    : api_keys_(std::move(api_keys)), metrics_(metrics) {}

void ExternalScalerService::SetBackends(const KedaScaler* scaler, DecisionFeed* feed) {
  feed_.store(feed);
  scaler_.store(scaler);
}

absl::StatusOr<ScaledChainlet> ExternalScalerService::Admit(
    const grpc::CallbackServerContext& context, const externalscaler::ScaledObjectRef& ref) const {
  std::optional<absl::string_view> authorization;
  const auto& headers = context.client_metadata();
  if (auto it = headers.find("authorization"); it != headers.end()) {
    authorization = absl::string_view(it->second.data(), it->second.size());
  }
  if (absl::Status s = AuthorizeScaledObject(api_keys_, ref.scalermetadata(), authorization);
      !s.ok()) {
    return s;
  }
  return ParseScaledChainlet(ref.scalermetadata());
}

template <typename Call>
grpc::ServerUnaryReactor* ExternalScalerService::Serve(const char* method,
                                                       grpc::CallbackServerContext* context,
                                                       const externalscaler::ScaledObjectRef& ref,
                                                       Call call) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Time start = absl::Now();
  absl::StatusOr<ScaledChainlet> chainlet = Admit(*context, ref);
  const KedaScaler* scaler = scaler_.load();
  if (chainlet.ok() && scaler == nullptr) chainlet = StillOpening();
  if (!chainlet.ok()) {
    metrics_->RecordRpc(method, absl::StatusCodeToString(chainlet.status().code()),
                        absl::Now() - start);
    reactor->Finish(ToGrpcStatus(chainlet.status()));
    return reactor;
  }
  workers_.Schedule([this, method, start, scaler, reactor, chainlet = *std::move(chainlet),
                     call = std::move(call)]() {
    absl::StatusOr<int32_t> desired = scaler->DesiredReplicas(chainlet);
    LogIfUnexpected(desired.status(), chainlet);
    if (desired.ok()) call(chainlet, *desired);
    metrics_->RecordRpc(method, absl::StatusCodeToString(desired.status().code()),
                        absl::Now() - start);
    reactor->Finish(ToGrpcStatus(desired.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* ExternalScalerService::IsActive(
    grpc::CallbackServerContext* context, const externalscaler::ScaledObjectRef* request,
    externalscaler::IsActiveResponse* response) {
  return Serve("IsActive", context, *request, [response](const ScaledChainlet&, int32_t desired) {
    response->set_result(desired > 0);
  });
}

grpc::ServerWriteReactor<externalscaler::IsActiveResponse>* ExternalScalerService::StreamIsActive(
    grpc::CallbackServerContext* context, const externalscaler::ScaledObjectRef* request) {
  return new ActivityStream(context, Admit(*context, *request), scaler_.load(), feed_.load(),
                            &streams_, &workers_, metrics_);
}

grpc::ServerUnaryReactor* ExternalScalerService::GetMetricSpec(
    grpc::CallbackServerContext* context, const externalscaler::ScaledObjectRef* request,
    externalscaler::GetMetricSpecResponse* response) {
  // Read like the others, so a ScaledObject naming no chainlet fails when KEDA creates
  // its HPA, not later.
  return Serve("GetMetricSpec", context, *request,
               [response](const ScaledChainlet& chainlet, int32_t) {
                 externalscaler::MetricSpec* spec = response->add_metricspecs();
                 spec->set_metricname(chainlet.metric_name());
                 spec->set_targetsize(1);
                 spec->set_targetsizefloat(1);
               });
}

grpc::ServerUnaryReactor* ExternalScalerService::GetMetrics(
    grpc::CallbackServerContext* context, const externalscaler::GetMetricsRequest* request,
    externalscaler::GetMetricsResponse* response) {
  // The metadata, not the metric name, says which chainlet: KEDA sends both, and the name
  // is the one GetMetricSpec gave.
  return Serve("GetMetrics", context, request->scaledobjectref(),
               [response](const ScaledChainlet& chainlet, int32_t desired) {
                 externalscaler::MetricValue* value = response->add_metricvalues();
                 value->set_metricname(chainlet.metric_name());
                 value->set_metricvalue(desired);
                 value->set_metricvaluefloat(desired);
               });
}

}  // namespace chainscale
