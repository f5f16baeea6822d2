#include "control_plane/committer.h"

#include <utility>

#include "common/log.h"

namespace chainscale {
namespace {

// A group's changes are written as one batch; this bounds its size.
constexpr size_t kMaxGroup = 1024;

}  // namespace

Committer::Committer(Store* store, CommitListener on_commit, DecisionListener on_decisions)
    : store_(store),
      on_commit_(std::move(on_commit)),
      on_decisions_(std::move(on_decisions)),
      thread_([this] { Run(); }) {}

Committer::~Committer() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

absl::StatusOr<int64_t> Committer::Commit(StoreMutation* mutation) {
  Pending pending{mutation};
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError("the control plane is shutting down");
  pending_.push_back(&pending);
  mu_.Await(absl::Condition(&pending.done));
  return pending.result;
}

void Committer::StoreDecisions(std::vector<v1::ScalingDecision> decisions,
                               std::function<void(const std::vector<absl::Status>&)> done) {
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    done(std::vector<absl::Status>(decisions.size(),
                                   absl::UnavailableError("the control plane is shutting down")));
    return;
  }
  decisions_.push_back({std::move(decisions), std::move(done), {}});
}

void Committer::SetDecisionFence(DecisionFence fence) {
  absl::MutexLock lock(&mu_);
  fence_ = std::move(fence);
}

void Committer::StoreOwners(std::vector<StoredOwner> owners) {
  if (owners.empty()) return;
  absl::MutexLock lock(&mu_);
  decisions_.push_back({{}, nullptr, std::move(owners)});
}

void Committer::StoreDecisionBatch(DecisionBatch& batch) {
  if (!batch.done) {
    if (absl::Status s = store_->PutOwners(batch.owners); !s.ok()) {
      LogError("owners not stored", {{"owners", std::to_string(batch.owners.size())},
                                     {"error", std::string(s.message())}});
    }
    return;
  }
  DecisionFence fence;
  {
    absl::MutexLock lock(&mu_);
    fence = fence_;
  }
  std::vector<absl::Status> statuses(batch.decisions.size());
  std::vector<v1::ScalingDecision> admitted;
  std::vector<size_t> where;
  for (size_t i = 0; i < batch.decisions.size(); ++i) {
    if (fence) statuses[i] = fence(batch.decisions[i]);
    if (!statuses[i].ok()) continue;
    where.push_back(i);
    admitted.push_back(std::move(batch.decisions[i]));
  }
  const std::vector<absl::Status> written = store_->PutDecisions(admitted);
  std::vector<v1::ScalingDecision> stored;
  for (size_t j = 0; j < where.size(); ++j) {
    statuses[where[j]] = written[j];
    if (written[j].ok() && on_decisions_) stored.push_back(std::move(admitted[j]));
  }
  if (!stored.empty()) on_decisions_(std::move(stored));
  batch.done(statuses);
}

int64_t Committer::groups() const {
  absl::MutexLock lock(&mu_);
  return groups_;
}

int64_t Committer::commits() const {
  absl::MutexLock lock(&mu_);
  return commits_;
}

void Committer::Run() {
  while (true) {
    std::vector<Pending*> group;
    std::deque<DecisionBatch> decisions;
    {
      absl::MutexLock lock(&mu_);
      auto has_work = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return stopping_ || !pending_.empty() || !decisions_.empty();
      };
      mu_.Await(absl::Condition(&has_work));
      if (pending_.empty() && decisions_.empty()) return;  // stopping, nothing left
      while (!pending_.empty() && group.size() < kMaxGroup) {
        group.push_back(pending_.front());
        pending_.pop_front();
      }
      decisions.swap(decisions_);
    }
    if (!group.empty()) CommitGroup(group);
    for (DecisionBatch& batch : decisions) StoreDecisionBatch(batch);
  }
}

void Committer::CommitGroup(std::vector<Pending*>& group) {
  std::vector<const StoreMutation*> mutations;
  mutations.reserve(group.size());
  const int64_t first = store_->revision() + 1;
  for (size_t i = 0; i < group.size(); ++i) {
    group[i]->mutation->Stamp(first + static_cast<int64_t>(i));
    mutations.push_back(group[i]->mutation);
  }
  const absl::Status status = store_->CommitBatch(mutations);
  std::vector<std::shared_ptr<const v1::SyncChange>> changes;
  if (status.ok()) {
    changes.reserve(group.size());
    for (const StoreMutation* m : mutations) {
      changes.push_back(std::make_shared<const v1::SyncChange>(m->change));
    }
    if (on_commit_) on_commit_(changes);
  }
  absl::MutexLock lock(&mu_);
  ++groups_;
  for (size_t i = 0; i < group.size(); ++i) {
    group[i]->result = status.ok() ? absl::StatusOr<int64_t>(first + static_cast<int64_t>(i))
                                   : absl::StatusOr<int64_t>(status);
    group[i]->done = true;
  }
  if (status.ok()) commits_ += static_cast<int64_t>(group.size());
}

}  // namespace chainscale
