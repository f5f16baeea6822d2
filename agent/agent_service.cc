#include "agent/agent_service.h"

#include <grpc/grpc.h>

#include <algorithm>
#include <deque>
#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/watch_backlog.h"
#include "common/decision_filter.h"
#include "common/grpc_auth.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/write_gate.h"
#include "common/write_only_stream.h"

namespace chainscale {
namespace {

// A StreamLoad client that does not read its responses stops being read from after this
// many are waiting.
constexpr size_t kMaxQueuedResponses = 1024;
// A StreamLoad stream stops being read from while this many parts of its batches wait for
// their owners: a fast reporter is slowed to what the owners take rather than refused
// for filling the forwarder's bound (which many streams together can still reach).
constexpr int kMaxForwardsPerStream = 16;
// Decisions of the listing a watcher starts with, read at a time.
constexpr int kListingPageSize = 256;

// The reports of one request by where they go (DESIGN §11 "Reports go anywhere"): the
// indices this agent takes (it owns the environment, or no owner is known, and the loop
// answers for it), and those for each other owner, by the owner's address.
struct OwnerSplit {
  std::vector<int> local;
  std::map<std::string, std::vector<int>> remote;
};

// Whether reports may have to go elsewhere: ownership is on and there is a forwarder.
bool Routes(const ReportRouting& routing, const DecisionLoop& loop) {
  return routing.forwarder != nullptr && loop.owned_only();
}

OwnerSplit SplitByOwner(const google::protobuf::RepeatedPtrField<v1::LoadReport>& reports,
                        const DecisionLoop& loop, const ReportRouting& routing) {
  OwnerSplit split;
  // Reports of one environment come together: look its owner up once per run of them.
  const v1::LoadReport* previous = nullptr;
  std::string address;
  for (int i = 0; i < reports.size(); ++i) {
    const v1::LoadReport& r = reports[i];
    if (previous == nullptr || previous->chain_id() != r.chain_id() ||
        previous->env_name() != r.env_name()) {
      address = loop.Owns(r.chain_id(), r.env_name())
                    ? std::string()
                    : routing.owner_address(r.chain_id(), r.env_name());
    }
    previous = &r;
    if (address.empty()) {
      split.local.push_back(i);
    } else {
      split.remote[address].push_back(i);
    }
  }
  return split;
}

google::protobuf::RepeatedPtrField<v1::LoadReport> Pick(
    const google::protobuf::RepeatedPtrField<v1::LoadReport>& reports,
    const std::vector<int>& indices) {
  google::protobuf::RepeatedPtrField<v1::LoadReport> picked;
  picked.Reserve(static_cast<int>(indices.size()));
  for (int i : indices) *picked.Add() = reports[i];
  return picked;
}

std::vector<v1::LoadReport> PickVector(
    const google::protobuf::RepeatedPtrField<v1::LoadReport>& reports,
    const std::vector<int>& indices) {
  std::vector<v1::LoadReport> picked;
  picked.reserve(indices.size());
  for (int i : indices) picked.push_back(reports[i]);
  return picked;
}

void Reject(v1::StreamLoadResponse& response, int index, const absl::Status& status) {
  v1::ReportRejection* rejection = response.add_rejections();
  rejection->set_index(index);
  rejection->set_code(static_cast<int32_t>(status.code()));
  rejection->set_message(std::string(status.message()));
}

// StreamLoad: reads batches, records each report on its own, answers each batch in order.
// Reports for environments another agent owns are forwarded to it; a batch's answer waits
// for its owners' answers, and later answers wait behind it (answers stay in order).
class LoadStream final
    : public grpc::ServerBidiReactor<v1::StreamLoadRequest, v1::StreamLoadResponse>,
      public EndableStream {
 public:
  LoadStream(grpc::CallbackServerContext* context, const absl::Status& auth, DecisionLoop* loop,
             const ReportRouting* routing, StreamSet* streams)
      : context_(context), loop_(loop), routing_(routing), streams_(streams) {
    if (!streams_->Add(this)) {
      End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "agent shutting down"));
    } else if (!auth.ok()) {
      End(ToGrpcStatus(auth));
    } else {
      reading_ = true;
      StartRead(&in_);
    }
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client is done sending
      absl::MutexLock lock(&mu_);
      reading_ = false;
      read_side_done_ = true;
      EndIfDrainedLocked();
      return;
    }
    // in_ stays ours (reading_ stays true, so no read starts) until the batch is taken.
    OwnerSplit split;
    if (Routes(*routing_, *loop_)) split = SplitByOwner(in_.reports(), *loop_, *routing_);
    if (split.remote.empty()) {
      v1::StreamLoadResponse response = Answer(in_.reports(), {});
      response.set_sequence(in_.sequence());
      absl::MutexLock lock(&mu_);
      queue_.push_back({std::move(response), 0});
      ReadDoneLocked();
      return;
    }
    Pending* pending;
    {
      absl::MutexLock lock(&mu_);
      queue_.push_back({});
      pending = &queue_.back();  // a deque keeps references across push_back and pop_front
      pending->response.set_sequence(in_.sequence());
      if (absl::Status s = loop_->CheckStreamBatch(in_.reports_size()); !s.ok()) {
        Reject(pending->response, 0, s);
        ReadDoneLocked();
        return;
      }
      // One for each owner, and one for this function until it has handed every part on.
      pending->waiting = static_cast<int>(split.remote.size()) + 1;
      forwards_ += static_cast<int>(split.remote.size());
    }
    if (!split.local.empty()) {
      v1::StreamLoadResponse local = Answer(Pick(in_.reports(), split.local), split.local);
      absl::MutexLock lock(&mu_);
      pending->response.set_accepted(pending->response.accepted() + local.accepted());
      for (v1::ReportRejection& r : *local.mutable_rejections()) {
        *pending->response.add_rejections() = std::move(r);
      }
    }
    for (auto& [address, indices] : split.remote) {
      std::vector<v1::LoadReport> reports = PickVector(in_.reports(), indices);
      routing_->forwarder->Forward(address, std::move(reports),
                                   [this, pending, address = address,
                                    indices = std::move(indices)](ForwardResult result) {
                                     Forwarded(pending, address, indices, result);
                                   });
    }
    absl::MutexLock lock(&mu_);
    --pending->waiting;
    ReadDoneLocked();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    if (std::optional<grpc::Status> end = gate_.Completed()) {
      Finish(*end);
      return;
    }
    if (!ok) {
      EndLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write to client failed"));
      return;
    }
    WriteNextLocked();
    ReadNextLocked();
    EndIfDrainedLocked();
  }

  void OnCancel() override { End(grpc::Status::CANCELLED); }

  // The stream is freed once gRPC is done with it and no owner's answer is outstanding.
  void OnDone() override {
    streams_->Remove(this);
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      if (forwards_ > 0) return;  // the last answer frees it
    }
    delete this;
  }

  void End(const grpc::Status& status) override {
    absl::MutexLock lock(&mu_);
    EndLocked(status);
  }

 private:
  // A batch's answer; `waiting` counts its parts not yet answered (owners, and the
  // reading side while it hands parts on).
  struct Pending {
    v1::StreamLoadResponse response;
    int waiting = 0;
  };

  // Records `reports` and says which were refused, as indices into the request:
  // `indices[i]` for the i-th report, or i itself when `indices` is empty. A batch over
  // the cap is refused whole: nothing accepted and one rejection, at index 0, saying why.
  v1::StreamLoadResponse Answer(const google::protobuf::RepeatedPtrField<v1::LoadReport>& reports,
                                const std::vector<int>& indices) {
    v1::StreamLoadResponse response;
    absl::StatusOr<std::vector<absl::Status>> statuses = loop_->ReportEach(reports);
    if (!statuses.ok()) {
      Reject(response, 0, statuses.status());
      return response;
    }
    int32_t accepted = 0;
    for (size_t i = 0; i < statuses->size(); ++i) {
      if ((*statuses)[i].ok()) {
        ++accepted;
      } else {
        Reject(response, indices.empty() ? static_cast<int>(i) : indices[i], (*statuses)[i]);
      }
    }
    response.set_accepted(accepted);
    return response;
  }

  // An owner's answer to the part of `pending` at `indices`. When the owner could not be
  // reached, every report of the part is refused with that status (the owner may have
  // taken some; sending them again is safe, a report being its source's latest value).
  void Forwarded(Pending* pending, const std::string& address, const std::vector<int>& indices,
                 const ForwardResult& result) {
    bool free = false;
    {
      absl::MutexLock lock(&mu_);
      v1::StreamLoadResponse& response = pending->response;
      if (result.status.ok()) {
        response.set_accepted(response.accepted() + result.accepted);
        for (const v1::ReportRejection& r : result.rejections) {
          v1::ReportRejection* rejection = response.add_rejections();
          *rejection = r;
          rejection->set_index(indices[r.index()]);
          rejection->set_message(absl::StrCat("the owner at ", address, ": ", r.message()));
        }
      } else {
        const absl::Status status(
            result.status.code(),
            absl::StrCat("the owner at ", address, ": ", result.status.message()));
        for (int i : indices) Reject(response, i, status);
      }
      --pending->waiting;
      --forwards_;
      if (done_) {
        free = forwards_ == 0;
      } else {
        WriteNextLocked();
        ReadNextLocked();
        EndIfDrainedLocked();
      }
    }
    if (free) delete this;
  }

  // The batch in in_ is taken: reading may go on.
  void ReadDoneLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    reading_ = false;
    WriteNextLocked();
    ReadNextLocked();
  }

  void EndIfDrainedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (read_side_done_ && queue_.empty() && !gate_.writing()) EndLocked(grpc::Status::OK);
  }

  // Writes the oldest answer once all its parts are in.
  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!gate_.CanWrite() || queue_.empty() || queue_.front().waiting > 0) return;
    out_ = std::move(queue_.front().response);
    queue_.pop_front();
    // Parts are answered in any order; rejections go out ordered by index.
    std::sort(out_.mutable_rejections()->begin(), out_.mutable_rejections()->end(),
              [](const v1::ReportRejection& a, const v1::ReportRejection& b) {
                return a.index() < b.index();
              });
    gate_.Started();
    StartWrite(&out_);
  }
  // Backpressure: stop reading while too many answers wait for the client.
  void ReadNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (reading_ || gate_.ending() || read_side_done_ || queue_.size() >= kMaxQueuedResponses ||
        forwards_ >= kMaxForwardsPerStream) {
      return;
    }
    reading_ = true;
    StartRead(&in_);
  }
  void EndLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    EndStream(context_, gate_, *this, status);
  }

  grpc::CallbackServerContext* const context_;
  DecisionLoop* const loop_;
  const ReportRouting* const routing_;
  StreamSet* const streams_;
  v1::StreamLoadRequest in_;
  absl::Mutex mu_;
  v1::StreamLoadResponse out_ ABSL_GUARDED_BY(mu_);
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  int forwards_ ABSL_GUARDED_BY(mu_) = 0;   // parts handed to owners, not yet answered
  bool done_ ABSL_GUARDED_BY(mu_) = false;  // OnDone has run
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool read_side_done_ ABSL_GUARDED_BY(mu_) = false;
  WriteGate gate_ ABSL_GUARDED_BY(mu_);
};

// WatchScalingDecisions: the current decisions, then each change (or every decision,
// with include_unchanged). The current decisions are read from the loop a page at a time
// as the stream takes them; later ones are written straight from the batches the loop
// shares among watchers. A watcher whose backlog outgrows its bound is ended with
// RESOURCE_EXHAUSTED.
class DecisionWatch final : public WriteOnlyStream<v1::ScalingDecision> {
 public:
  DecisionWatch(grpc::CallbackServerContext* context, const absl::Status& auth,
                const v1::WatchScalingDecisionsRequest& request, DecisionLoop* loop,
                StreamSet* streams, WatchOptions options)
      : WriteOnlyStream(context), loop_(loop), streams_(streams), options_(options),
        backlog_(request.chain_id(), request.env_name()) {
    if (!streams_->Add(this)) {
      End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "agent shutting down"));
      return;
    }
    if (!auth.ok()) {
      End(ToGrpcStatus(auth));
      return;
    }
    if (absl::Status s = ValidateDecisionFilter(request.chain_id(), request.env_name());
        !s.ok()) {
      End(ToGrpcStatus(s));
      return;
    }
    {
      // The current decisions, read a page at a time as the stream takes them, go before
      // any batch the loop tells of from now on.
      absl::MutexLock lock(&mu_);
      backlog_.StartListing(
          loop_->size(), [loop = loop_, chain_id = request.chain_id(),
                          env_name = request.env_name()](const std::string& page_token) {
            v1::ListScalingDecisionsRequest page;
            page.set_chain_id(chain_id);
            page.set_env_name(env_name);
            page.set_page_size(kListingPageSize);
            page.set_page_token(page_token);
            return loop->ListPage(page);
          });
    }
    watcher_ = loop_->AddWatcher([this](const DecisionBatchPtr& batch) { Enqueue(batch); },
                                 request.include_unchanged());
    absl::MutexLock lock(&mu_);
    WriteNextLocked();
  }

  void OnDone() override {
    if (watcher_.has_value()) loop_->RemoveWatcher(*watcher_);
    streams_->Remove(this);
    delete this;
  }

 private:
  void Enqueue(DecisionBatchPtr batch) {
    absl::MutexLock lock(&mu_);
    if (gate_.ending()) return;
    const size_t bound = std::max(options_.min_backlog, 2 * loop_->size());
    if (!backlog_.Add(std::move(batch), bound)) {
      LogWarning("ending a watch that cannot keep up",
                 {{"peer", context_->peer()}, {"behind", absl::StrCat(bound)}});
      EndLocked(grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("this watch fell more than ", bound,
                       " decisions behind; read faster, filter by chain_id and env_name, or "
                       "leave include_unchanged off")));
      return;
    }
    WriteNextLocked();
  }

  void WriteNextLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!gate_.CanWrite()) return;
    const v1::ScalingDecision* next = backlog_.Next();
    if (next == nullptr) return;
    gate_.Started();
    StartWrite(next);
  }

  DecisionLoop* const loop_;
  StreamSet* const streams_;
  const WatchOptions options_;
  std::optional<int> watcher_;
  WatchBacklog backlog_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

AgentService::AgentService(ApiKeys api_keys, DecisionLoop* loop, Metrics* metrics,
                           WatchOptions watch)
    : api_keys_(std::move(api_keys)), loop_(loop), metrics_(metrics), watch_(watch) {}

template <typename Call>
grpc::Status AgentService::Serve(const char* method, grpc::ServerContext* context, Call call) {
  const absl::Time start = absl::Now();
  absl::Status status = AuthorizeCall(api_keys_, *context);
  if (status.ok()) status = call();
  metrics_->RecordRpc(method, absl::StatusCodeToString(status.code()), absl::Now() - start);
  return ToGrpcStatus(status);
}

grpc::Status AgentService::ReportLoad(grpc::ServerContext* context,
                                      const v1::ReportLoadRequest* request,
                                      v1::ReportLoadResponse* response) {
  return Serve("ReportLoad", context, [&] {
    auto take = [&](const google::protobuf::RepeatedPtrField<v1::LoadReport>& reports) {
      absl::StatusOr<std::vector<v1::ScalingDecision>> decisions = loop_->Report(reports);
      if (!decisions.ok()) return decisions.status();
      for (v1::ScalingDecision& d : *decisions) *response->add_decisions() = std::move(d);
      return absl::OkStatus();
    };
    // Reports for environments another agent owns go to that owner; the rest are taken
    // here. A batch that spans owners is taken per owner (each part whole or not at all).
    OwnerSplit split;
    if (Routes(routing_, *loop_)) split = SplitByOwner(request->reports(), *loop_, routing_);
    if (split.remote.empty()) return take(request->reports());
    if (!split.local.empty()) {
      if (absl::Status s = take(Pick(request->reports(), split.local)); !s.ok()) return s;
    }
    for (auto& [address, indices] : split.remote) {
      const ForwardResult result =
          routing_.forwarder->ForwardAndWait(address, PickVector(request->reports(), indices));
      if (!result.status.ok()) {
        return absl::Status(result.status.code(),
                            absl::StrCat("the owner at ", address, ": ", result.status.message()));
      }
      if (!result.rejections.empty()) {
        const v1::ReportRejection& first = result.rejections.front();
        return absl::Status(static_cast<absl::StatusCode>(first.code()),
                            absl::StrCat("the owner at ", address, ": ", first.message()));
      }
    }
    return absl::OkStatus();
  });
}

grpc::Status AgentService::GetScalingDecision(grpc::ServerContext* context,
                                              const v1::GetScalingDecisionRequest* request,
                                              v1::ScalingDecision* response) {
  return Serve("GetScalingDecision", context, [&] {
    v1::ChainletKey key;
    key.set_chain_id(request->chain_id());
    key.set_env_name(request->env_name());
    key.set_chainlet_name(request->chainlet_name());
    absl::StatusOr<v1::ScalingDecision> decision = loop_->Get(key);
    if (!decision.ok()) return decision.status();
    *response = *std::move(decision);
    return absl::OkStatus();
  });
}

grpc::Status AgentService::ListScalingDecisions(grpc::ServerContext* context,
                                                const v1::ListScalingDecisionsRequest* request,
                                                v1::ListScalingDecisionsResponse* response) {
  return Serve("ListScalingDecisions", context, [&]() -> absl::Status {
    absl::StatusOr<v1::ListScalingDecisionsResponse> page = loop_->ListPage(*request);
    if (!page.ok()) return page.status();
    *response = *std::move(page);
    return absl::OkStatus();
  });
}

grpc::ServerBidiReactor<v1::StreamLoadRequest, v1::StreamLoadResponse>* AgentService::StreamLoad(
    grpc::CallbackServerContext* context) {
  metrics_->Add("chainscale_load_streams_total", {});
  return new LoadStream(context, AuthorizeCall(api_keys_, *context), loop_, &routing_,
                        &streams_);
}

grpc::ServerWriteReactor<v1::ScalingDecision>* AgentService::WatchScalingDecisions(
    grpc::CallbackServerContext* context, const v1::WatchScalingDecisionsRequest* request) {
  metrics_->Add("chainscale_watch_streams_total", {});
  return new DecisionWatch(context, AuthorizeCall(api_keys_, *context), *request, loop_,
                           &streams_, watch_);
}

}  // namespace chainscale
