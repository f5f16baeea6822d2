#include "tools/actuator/decision_follower.h"

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace chainscale {
namespace {

absl::Status FromGrpc(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

}  // namespace

DecisionFollower::DecisionFollower(DecisionFollowerOptions options,
                                   std::map<std::string, Reconciler*> reconcilers)
    : options_(std::move(options)),
      reconcilers_(std::move(reconcilers)),
      stub_(v1::ControlPlane::NewStub(options_.channel)) {}

DecisionFollower::~DecisionFollower() { Stop(); }

void DecisionFollower::Start() { thread_ = std::thread([this] { Run(); }); }

void DecisionFollower::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (context_ != nullptr) context_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

bool DecisionFollower::connected() const {
  absl::MutexLock lock(&mu_);
  return connected_;
}

void DecisionFollower::Run() {
  Backoff backoff(options_.reconnect);
  while (true) {
    const absl::Status status = Follow(backoff);
    {
      absl::MutexLock lock(&mu_);
      connected_ = false;
      if (stopping_) return;
    }
    const absl::Duration delay = backoff.Next();
    LogWarning("decision feed ended", {{"chain", options_.chain_id},
                                       {"environment", options_.env_name},
                                       {"code", absl::StatusCodeToString(status.code())},
                                       {"error", std::string(status.message())},
                                       {"retry_in", absl::FormatDuration(delay)}});
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), delay);
    if (stopping_) return;
  }
}

absl::Status DecisionFollower::ReadSettings() {
  grpc::ClientContext context;
  if (!options_.api_key.empty()) {
    context.AddMetadata("authorization", absl::StrCat("Api-Key ", options_.api_key));
  }
  context.set_deadline(absl::ToChronoTime(absl::Now() + options_.call_timeout));
  v1::GetChainEnvironmentRequest request;
  request.set_chain_id(options_.chain_id);
  request.set_env_name(options_.env_name);
  v1::ChainEnvironment environment;
  if (grpc::Status s = stub_->GetChainEnvironment(&context, request, &environment); !s.ok()) {
    return FromGrpc(s);
  }
  for (const auto& [chainlet, reconciler] : reconcilers_) {
    const v1::ChainletEnvironmentSettings* found = nullptr;
    for (const v1::ChainletEnvironmentSettings& c : environment.chainlet_settings()) {
      if (c.chainlet_name() == chainlet) found = &c;
    }
    if (found == nullptr) {
      LogError("no such chainlet: nothing is started for it",
               {{"chainlet", reconciler->name()},
                {"chainlets", absl::StrCat(environment.chainlet_settings_size())}});
      continue;
    }
    const int max_replica = found->autoscaling_settings().max_replica();
    settings_revision_[chainlet] = found->revision();
    auto known = max_replica_.find(chainlet);
    if (known == max_replica_.end() || known->second != max_replica) {
      LogInfo("replicas capped at max_replica",
              {{"chainlet", reconciler->name()},
               {"max_replica", absl::StrCat(max_replica)},
               {"settings_revision", absl::StrCat(found->revision())}});
      max_replica_[chainlet] = max_replica;
    }
    reconciler->SetMaxReplica(max_replica);
  }
  return absl::OkStatus();
}

void DecisionFollower::Apply(const v1::ScalingDecision& decision) {
  auto it = reconcilers_.find(decision.chainlet_name());
  if (it == reconcilers_.end()) return;
  auto revision = settings_revision_.find(decision.chainlet_name());
  if (revision == settings_revision_.end() || decision.settings_revision() > revision->second) {
    // Made with settings newer than those read: max_replica may have moved.
    if (absl::Status s = ReadSettings(); !s.ok()) {
      LogWarning("cannot read the chainlet's settings; keeping the cap read before",
                 {{"chainlet", it->second->name()}, {"error", std::string(s.message())}});
    }
  }
  it->second->SetDecision(decision.desired_replicas(),
                          absl::StrCat("decision of ", decision.agent_id(), ": ",
                                       decision.reason()));
}

absl::Status DecisionFollower::Follow(Backoff& backoff) {
  if (absl::Status s = ReadSettings(); !s.ok()) return s;
  grpc::ClientContext context;
  if (!options_.api_key.empty()) {
    context.AddMetadata("authorization", absl::StrCat("Api-Key ", options_.api_key));
  }
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::CancelledError("stopping");
    context_ = &context;
  }
  v1::WatchDecisionFeedRequest request;
  request.set_chain_id(options_.chain_id);
  request.set_env_name(options_.env_name);
  request.set_feed_id(feed_id_);
  request.set_resume_after(resume_after_);
  std::unique_ptr<grpc::ClientReader<v1::WatchDecisionFeedResponse>> reader =
      stub_->WatchScalingDecisions(&context, request);
  v1::WatchDecisionFeedResponse message;
  while (reader->Read(&message)) {
    backoff.Reset();
    {
      absl::MutexLock lock(&mu_);
      connected_ = true;
    }
    feed_id_ = message.feed_id();
    resume_after_ = message.sequence();
    if (message.initial_state_done()) {
      LogInfo("following the decision feed",
              {{"chain", options_.chain_id},
               {"environment", options_.env_name},
               {"resumed", message.resumed() ? "true" : "false"}});
    }
    if (message.has_decision()) Apply(message.decision());
  }
  const grpc::Status status = reader->Finish();
  absl::MutexLock lock(&mu_);
  context_ = nullptr;
  return FromGrpc(status);
}

}  // namespace chainscale
