// Committer: the control plane's one writer. Callers on any thread hand it a change and
// wait for it to be durable; its thread gathers every change waiting at that moment into
// one synced batch (group commit: concurrent updates share one fsync, as etcd's and
// RocksDB's write groups do when writers are not serialised above them), assigns the
// revisions in order, and then tells the listener, which must not block. Decisions from
// agents are written on the same thread, between groups and without fsync, so a decision
// can never race with the commit that deletes its chainlet.
#ifndef CHAINSCALE_CONTROL_PLANE_COMMITTER_H_
#define CHAINSCALE_CONTROL_PLANE_COMMITTER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "chainscale/v1/control_plane.pb.h"
#include "control_plane/store.h"

namespace chainscale {

// What a listener hears after each durable group: the changes of revisions
// (previous, last], in order.
using CommitListener =
    std::function<void(const std::vector<std::shared_ptr<const v1::SyncChange>>& changes)>;

// What a listener hears after each batch of decisions is written: the decisions stored
// (refused ones left out), in order. It runs on the committer's thread and must not block.
using DecisionListener = std::function<void(std::vector<v1::ScalingDecision> stored)>;

class Committer {
 public:
  // `store` must outlive the committer.
  Committer(Store* store, CommitListener on_commit, DecisionListener on_decisions = nullptr);
  // Finishes what is queued, then stops the thread.
  ~Committer();

  Committer(const Committer&) = delete;
  Committer& operator=(const Committer&) = delete;

  // Queues `mutation`, waits until it is durable and returns its revision (the mutation
  // is stamped with it, see StoreMutation::Stamp). The store's error otherwise, with
  // nothing of it written.
  absl::StatusOr<int64_t> Commit(StoreMutation* mutation) ABSL_LOCKS_EXCLUDED(mu_);

  // Queues decisions to store; `done` runs on the committer's thread with one status per
  // decision once they are written (or refused).
  void StoreDecisions(std::vector<v1::ScalingDecision> decisions,
                      std::function<void(const std::vector<absl::Status>&)> done)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Fencing (DESIGN §11): checked on the committer's thread right before each decision is
  // written, so no hand-over can slip between the check and the write; a decision it
  // refuses is not stored and gets its status. Set before any decision is queued.
  using DecisionFence = std::function<absl::Status(const v1::ScalingDecision&)>;
  void SetDecisionFence(DecisionFence fence) ABSL_LOCKS_EXCLUDED(mu_);

  // Queues owners of chain environments to store (see Store::PutOwners); a failure is
  // logged. Returns at once.
  void StoreOwners(std::vector<StoredOwner> owners) ABSL_LOCKS_EXCLUDED(mu_);

  // Commit groups written so far and the changes in them (for metrics and benchmarks).
  int64_t groups() const ABSL_LOCKS_EXCLUDED(mu_);
  int64_t commits() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Pending {
    StoreMutation* mutation;
    absl::StatusOr<int64_t> result = absl::UnknownError("not committed");
    bool done = false;
  };
  // Decisions to store, or (with `done` empty) owners.
  struct DecisionBatch {
    std::vector<v1::ScalingDecision> decisions;
    std::function<void(const std::vector<absl::Status>&)> done;
    std::vector<StoredOwner> owners;
  };
  void StoreDecisionBatch(DecisionBatch& batch);

  void Run();
  void CommitGroup(std::vector<Pending*>& group);

  Store* const store_;
  const CommitListener on_commit_;
  const DecisionListener on_decisions_;
  mutable absl::Mutex mu_;
  std::deque<Pending*> pending_ ABSL_GUARDED_BY(mu_);
  std::deque<DecisionBatch> decisions_ ABSL_GUARDED_BY(mu_);
  DecisionFence fence_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t groups_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t commits_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace chainscale

#endif  // CHAINSCALE_CONTROL_PLANE_COMMITTER_H_
