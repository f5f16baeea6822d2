// Ownership: the control plane's record of which agent decides each chain environment,
// with epochs and leases (DESIGN §11). It knows the chain environments, the agents with a
// lease (connected, or disconnected for less than the lease TTL) and the owners; whenever
// one of them changes it reruns the Assigner and returns the hand-overs, each with a new
// epoch. Epochs are (boot generation << 32) + a counter, so they only grow, also across
// restarts (the store keeps the generation). The caller stores the hand-overs and tells the
// agents; this class does no I/O and takes the time as an argument, so leases are tested
// without waiting.
#ifndef CHAINSCALE_CONTROL_PLANE_OWNERSHIP_H_
#define CHAINSCALE_CONTROL_PLANE_OWNERSHIP_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "chainscale/v1/control_plane.pb.h"
#include "control_plane/assigner.h"
#include "control_plane/store.h"

namespace chainscale {

struct OwnershipOptions {
  // How long an agent keeps its work after its stream ends (--lease_ttl).
  absl::Duration lease_ttl = absl::Seconds(10);
};

// One chain environment changing hands; `to` empty when nobody may serve it any more.
struct HandOver {
  ChainEnv env;
  std::string from;
  std::string to;
  int64_t epoch = 0;  // the new owner's epoch (0 when `to` is empty)
};

class Ownership {
 public:
  // `envs`: the chain environments that exist. `stored`: the owners the store holds; their
  // agents get a lease from `now`, so agents that reconnect within the TTL after a restart
  // keep their work and epochs. `generation`: this run's boot generation
  // (Store::BeginGeneration).
  Ownership(OwnershipOptions options, int64_t generation, std::vector<ChainEnv> envs,
            const std::vector<StoredOwner>& stored, absl::Time now);

  // The chain environments that exist now (after commits that created or deleted some).
  std::vector<HandOver> SetEnvironments(std::vector<ChainEnv> envs);
  // An agent's stream is up; it may serve what `selector` selects. The same agent back
  // within its lease keeps its work and epochs.
  std::vector<HandOver> Connect(const std::string& agent_id, const v1::Selector& selector);
  // Its stream ended: its work stays with it until `now` + the lease TTL.
  void Disconnect(const std::string& agent_id, absl::Time now);
  // Agents whose lease ran out by `now` leave; their work is handed over.
  std::vector<HandOver> Expire(absl::Time now);
  // When the next lease runs out, if one is running.
  std::optional<absl::Time> NextExpiry() const;

  // The owner of an environment, if any.
  std::optional<v1::EnvironmentOwner> OwnerOf(const ChainEnv& env) const;
  // Fencing: true when `agent_id` owns `env` under `epoch` now.
  bool IsCurrent(const ChainEnv& env, const std::string& agent_id, int64_t epoch) const;
  // What `agent_id` owns, with epochs.
  std::vector<std::pair<ChainEnv, int64_t>> OwnedBy(const std::string& agent_id) const;
  // Environments owned, per agent that owns any.
  absl::flat_hash_map<std::string, int64_t> OwnedCounts() const;
  // Hand-overs in the form the store keeps (an empty agent_id deletes).
  static std::vector<StoredOwner> ToStored(const std::vector<HandOver>& hand_overs);

 private:
  struct Agent {
    v1::Selector selector;
    bool connected = false;
    std::optional<absl::Time> lease_end;  // set while disconnected
  };
  std::vector<HandOver> Rebalance();

  const OwnershipOptions options_;
  const int64_t generation_;
  int64_t counter_ = 0;
  std::vector<ChainEnv> envs_;
  absl::flat_hash_map<std::string, Agent> agents_;
  absl::flat_hash_map<ChainEnv, v1::EnvironmentOwner> owners_;
};

}  // namespace chainscale

#endif  // CHAINSCALE_CONTROL_PLANE_OWNERSHIP_H_
