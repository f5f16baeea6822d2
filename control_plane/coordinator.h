// Coordinator: ownership on a running control plane (DESIGN §11). It keeps the Ownership
// record, starts a boot generation, learns from commits which chain environments exist,
// runs the lease timer, stores every hand-over through the Committer, and hands the
// routes agents must hear to a listener (the Sync hub), in order, from its own thread:
// nothing here reads the store on a committing thread or in a gRPC reaction.
#ifndef CHAINSCALE_CONTROL_PLANE_COORDINATOR_H_
#define CHAINSCALE_CONTROL_PLANE_COORDINATOR_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "chainscale/v1/control_plane.pb.h"
#include "common/clock.h"
#include "control_plane/committer.h"
#include "control_plane/ownership.h"
#include "control_plane/store.h"

namespace chainscale {

// Routes for one agent (`agent_id` set: its whole table, `message.reset()` true) or for
// every agent (`agent_id` empty: hand-overs). A new owner's route carries the
// environment's stored decisions; the hub strips them for everyone else.
struct RouteDelivery {
  std::string agent_id;
  v1::SyncOwners message;
};

class Coordinator {
 public:
  // Called from the coordinator's thread, in order; must not block.
  using Listener = std::function<void(std::vector<RouteDelivery> deliveries)>;

  // Begins a boot generation, reads the stored owners and the chain environments.
  // `store`, `committer` and `clock` must outlive the coordinator.
  static absl::StatusOr<std::unique_ptr<Coordinator>> Start(Store* store, Committer* committer,
                                                            OwnershipOptions options,
                                                            const Clock& clock);
  ~Coordinator();  // stops the thread

  // Stops the thread: nothing more is stored or delivered. Idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // Set before any agent connects.
  void SetListener(Listener listener) ABSL_LOCKS_EXCLUDED(mu_);

  // An agent's Sync stream is up (after its hello) or ended. Return at once; the work is
  // done on the coordinator's thread, in the order of the calls.
  void Connected(const std::string& agent_id, const v1::Selector& selector,
                 const std::string& address) ABSL_LOCKS_EXCLUDED(mu_);
  void Disconnected(const std::string& agent_id) ABSL_LOCKS_EXCLUDED(mu_);
  // Revisions were committed: O(changes), for the committing thread.
  void Committed(const std::vector<std::shared_ptr<const v1::SyncChange>>& changes)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Fencing: OK when `decision` carries the current epoch of its environment and comes
  // from the owner; FAILED_PRECONDITION otherwise.
  absl::Status Fence(const v1::ScalingDecision& decision) const ABSL_LOCKS_EXCLUDED(mu_);
  std::optional<v1::EnvironmentOwner> OwnerOf(const std::string& chain_id,
                                              const std::string& env_name) const
      ABSL_LOCKS_EXCLUDED(mu_);

  struct Stats {
    absl::flat_hash_map<std::string, int64_t> owned;  // environments per agent
    int64_t hand_overs = 0;  // environments that changed owner (first assignments too)
    int64_t expired_leases = 0;
  };
  Stats stats() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Event {
    enum Kind { kConnected, kDisconnected, kCommitted } kind;
    std::string agent_id;
    v1::Selector selector;
    std::string address;
    std::vector<ChainEnv> upserted;  // chain environments that got chainlets...
    std::vector<ChainEnv> removed;   // ...or lost some
  };

  Coordinator(Store* store, Committer* committer, const Clock& clock,
              std::unique_ptr<Ownership> ownership, std::vector<ChainEnv> envs);
  void Run() ABSL_LOCKS_EXCLUDED(mu_);
  // Stores hand-overs and turns them into deliveries. Coordinator thread.
  void Publish(const std::vector<HandOver>& hand_overs, std::vector<RouteDelivery>* out)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The route of `env` as it stands.
  v1::EnvironmentRoute RouteLocked(const ChainEnv& env) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Splits routes into messages of at most max bytes.
  static std::vector<v1::SyncOwners> Chunk(std::vector<v1::EnvironmentRoute> routes, bool reset);

  Store* const store_;
  Committer* const committer_;
  const Clock& clock_;

  mutable absl::Mutex mu_;
  std::unique_ptr<Ownership> ownership_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::string> addresses_ ABSL_GUARDED_BY(mu_);
  std::deque<Event> events_ ABSL_GUARDED_BY(mu_);
  Listener listener_ ABSL_GUARDED_BY(mu_);
  int64_t hand_overs_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t expired_leases_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Coordinator thread only: the environments that exist.
  std::vector<ChainEnv> envs_;
  absl::flat_hash_set<ChainEnv> known_;
  std::thread thread_;
};

}  // namespace chainscale

#endif  // CHAINSCALE_CONTROL_PLANE_COORDINATOR_H_
