#include "control_plane/control_plane_service.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_auth.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/write_only_stream.h"

namespace chainscale {
namespace {

// WatchScalingDecisions: the initial state (read from the store a page at a time as the
// stream takes it), its end, then each decision the feed offers, the latest per chainlet
// while the client reads slowly. A watcher with more chainlets waiting than its bound is
// ended with RESOURCE_EXHAUSTED.
class FeedWatch final : public WriteOnlyStream<v1::WatchDecisionFeedResponse>,
                        public FeedSink {
 public:
  FeedWatch(grpc::CallbackServerContext* context, const absl::Status& auth,
            const v1::WatchDecisionFeedRequest& request, DecisionFeed* feed, StreamSet* streams,
            size_t max_pending)
      : WriteOnlyStream(context),
        feed_(feed),
        streams_(streams),
        filter_{request.chain_id(), request.env_name()},
        backlog_(filter_, feed == nullptr ? "" : feed->feed_id(), max_pending) {
    if (!streams_->Add(this)) {
      End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
      return;
    }
    if (!auth.ok()) {
      End(ToGrpcStatus(auth));
      return;
    }
    if (feed_ == nullptr) {
      End(ToGrpcStatus(absl::UnavailableError("the control plane is still opening its store")));
      return;
    }
    if (absl::Status s = feed_->CheckFilter(filter_); !s.ok()) {
      End(ToGrpcStatus(s));
      return;
    }
    registered_ = true;
    feed_->AddSink(this, request.feed_id(), request.resume_after());
  }

  void Begin(const FeedStart& start, const FeedBatch& missed) override {
    absl::MutexLock lock(&mu_);
    if (start.resumed) {
      backlog_.StartResumed(start.sequence, missed);
    } else {
      backlog_.StartWithInitialState(start.sequence, feed_->PageReaderFor(filter_));
    }
    WriteNextLocked();
  }

  void Offer(const FeedBatch& batch) override {
    absl::MutexLock lock(&mu_);
    if (gate_.ending()) return;
    if (!backlog_.Add(batch)) {
      LogWarning("ending a decision watch that cannot keep up", {{"peer", context_->peer()}});
      EndLocked(grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          "this watch has more chainlets waiting than the control plane keeps for one "
          "watcher; read faster, or filter by chain_id and env_name"));
      return;
    }
    WriteNextLocked();
  }

  void OnDone() override {
    if (registered_) feed_->RemoveSink(this);
    streams_->Remove(this);
    delete this;
  }

 private:
  void WriteNextLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!gate_.CanWrite()) return;
    absl::StatusOr<bool> next = backlog_.Next(&out_);
    if (!next.ok()) {
      LogWarning("cannot read the stored decisions", {{"error", next.status().ToString()}});
      EndLocked(ToGrpcStatus(next.status()));
      return;
    }
    if (!*next) return;
    gate_.Started();
    StartWrite(&out_);
  }

  DecisionFeed* const feed_;
  StreamSet* const streams_;
  const DecisionFilter filter_;
  bool registered_ = false;
  FeedBacklog backlog_ ABSL_GUARDED_BY(mu_);
  v1::WatchDecisionFeedResponse out_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

ControlPlaneService::ControlPlaneService(ControlPlaneServiceOptions options, Metrics* metrics)
    : options_(std::move(options)), metrics_(metrics) {}

void ControlPlaneService::SetBackends(Management* management, SyncHub* hub,
                                      DecisionFeed* feed) {
  feed_.store(feed);
  hub_.store(hub);
  management_.store(management);
}

grpc::ServerBidiReactor<v1::SyncRequest, v1::SyncResponse>* ControlPlaneService::Sync(
    grpc::CallbackServerContext* context) {
  metrics_->Add("chainscale_sync_streams_total", {});
  // Sync is open only when nothing at all is protected: --insecure with no
  // management keys and no agent tokens. Whenever keys are configured, agents
  // need a token too.
  SyncAccess access;
  access.agent_tokens = &options_.agent_tokens;
  access.open = options_.insecure && options_.api_keys.empty() && options_.agent_tokens.empty();
  return new SyncStream(context, access, hub_.load(), &streams_);
}

grpc::ServerWriteReactor<v1::WatchDecisionFeedResponse>*
ControlPlaneService::WatchScalingDecisions(grpc::CallbackServerContext* context,
                                           const v1::WatchDecisionFeedRequest* request) {
  metrics_->Add("chainscale_decision_watches_total", {});
  return new FeedWatch(context, AuthorizeCall(options_.api_keys, *context), *request,
                       feed_.load(), &streams_, options_.max_feed_pending);
}

template <typename Call>
grpc::ServerUnaryReactor* ControlPlaneService::Serve(const char* method,
                                                     grpc::CallbackServerContext* context,
                                                     Call call) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Time start = absl::Now();
  absl::Status status = AuthorizeCall(options_.api_keys, *context);
  Management* management = management_.load();
  if (status.ok() && management == nullptr) {
    status = absl::UnavailableError("the control plane is still opening its store");
  }
  if (!status.ok()) {
    metrics_->RecordRpc(method, absl::StatusCodeToString(status.code()), absl::Now() - start);
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }
  workers_.Schedule([this, method, start, management, reactor, call = std::move(call)]() {
    const absl::Status result = call(*management);
    metrics_->RecordRpc(method, absl::StatusCodeToString(result.code()), absl::Now() - start);
    reactor->Finish(ToGrpcStatus(result));
  });
  return reactor;
}

// Copies a StatusOr's value into a response, passing its status on.
template <typename T>
absl::Status Into(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return result.status();
  *response = *std::move(result);
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* ControlPlaneService::CreateChain(grpc::CallbackServerContext* context,
                                                           const v1::CreateChainRequest* request,
                                                           v1::Chain* response) {
  return Serve("CreateChain", context, [request, response](Management& m) {
    return Into(m.registry().CreateChain(*request), response);
  });
}

grpc::ServerUnaryReactor* ControlPlaneService::GetChain(grpc::CallbackServerContext* context,
                                                        const v1::GetChainRequest* request,
                                                        v1::Chain* response) {
  return Serve("GetChain", context, [request, response](Management& m) {
    return Into(m.registry().GetChain(request->chain_id()), response);
  });
}

grpc::ServerUnaryReactor* ControlPlaneService::ListChains(grpc::CallbackServerContext* context,
                                                          const v1::ListChainsRequest* request,
                                                          v1::ListChainsResponse* response) {
  return Serve("ListChains", context, [request, response](Management& m) {
    return Into(m.registry().ListChains(*request), response);
  });
}

grpc::ServerUnaryReactor* ControlPlaneService::DeleteChain(grpc::CallbackServerContext* context,
                                                           const v1::DeleteChainRequest* request,
                                                           v1::DeleteChainResponse* response) {
  return Serve("DeleteChain", context, [request, response](Management& m) {
    absl::StatusOr<int64_t> revision = m.registry().DeleteChain(request->chain_id());
    if (revision.ok()) response->set_revision(*revision);
    return revision.status();
  });
}

grpc::ServerUnaryReactor* ControlPlaneService::CreateEnvironment(
    grpc::CallbackServerContext* context, const v1::CreateEnvironmentRequest* request,
    v1::ChainEnvironment* response) {
  return Serve("CreateEnvironment", context, [request, response](Management& m) {
    return Into(m.registry().CreateEnvironment(*request), response);
  });
}

grpc::ServerUnaryReactor* ControlPlaneService::DeleteEnvironment(
    grpc::CallbackServerContext* context, const v1::DeleteEnvironmentRequest* request,
    v1::DeleteEnvironmentResponse* response) {
  return Serve("DeleteEnvironment", context, [request, response](Management& m) {
    absl::StatusOr<int64_t> revision =
        m.registry().DeleteEnvironment(request->chain_id(), request->env_name());
    if (revision.ok()) response->set_revision(*revision);
    return revision.status();
  });
}

grpc::ServerUnaryReactor* ControlPlaneService::GetChainEnvironment(
    grpc::CallbackServerContext* context, const v1::GetChainEnvironmentRequest* request,
    v1::ChainEnvironment* response) {
  return Serve("GetChainEnvironment", context, [request, response](Management& m) {
    return Into(m.GetChainEnvironment(request->chain_id(), request->env_name()),
                response);
  });
}

grpc::ServerUnaryReactor* ControlPlaneService::UpdateChainletEnvironmentAutoscalingSettings(
    grpc::CallbackServerContext* context,
    const v1::UpdateChainletEnvironmentAutoscalingSettingsRequest* request,
    v1::UpdateChainletEnvironmentAutoscalingSettingsResponse* response) {
  return Serve(
      "UpdateChainletEnvironmentAutoscalingSettings", context,
      [request, response](Management& m) { return Into(m.UpdateSettings(*request), response); });
}

}  // namespace chainscale
