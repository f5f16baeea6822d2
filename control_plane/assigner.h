// Assigner: which connected agent decides each chain environment (DESIGN §11). Pure: it
// takes the chain environments, the live agents with what each may serve, and the owners
// so far, and returns the moves to make. Every environment some agent may serve gets
// exactly one owner among those agents; owners that are still live and eligible keep their
// work; new work goes by rendezvous hashing (the eligible agent that scores the
// environment highest), within a cap that keeps agents of equal eligibility within one
// environment of each other. So an agent that joins takes only its share (the
// environments that score it highest, from agents above their share), and one that leaves
// gives away only its own.
#ifndef CHAINSCALE_CONTROL_PLANE_ASSIGNER_H_
#define CHAINSCALE_CONTROL_PLANE_ASSIGNER_H_

#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "chainscale/v1/control_plane.pb.h"

namespace chainscale {

struct ChainEnv {
  std::string chain_id;
  std::string env_name;

  friend bool operator==(const ChainEnv& a, const ChainEnv& b) {
    return a.chain_id == b.chain_id && a.env_name == b.env_name;
  }
  friend bool operator<(const ChainEnv& a, const ChainEnv& b) {
    return std::tie(a.chain_id, a.env_name) < std::tie(b.chain_id, b.env_name);
  }
  template <typename H>
  friend H AbslHashValue(H h, const ChainEnv& e) {
    return H::combine(std::move(h), e.chain_id, e.env_name);
  }
};

// An agent that may be given work, and the chain environments it may serve.
struct AssignableAgent {
  std::string agent_id;
  v1::Selector selector;  // empty: everything
  // False for an agent whose stream is down but whose lease runs: it keeps what it owns
  // and may give it away, but is given nothing new.
  bool accepts_new_work = true;
};

struct OwnerMove {
  ChainEnv env;
  std::string from;  // empty: the environment had no (live, eligible) owner
  std::string to;    // empty: no live agent may serve it any more
};

// The rendezvous score of `agent_id` for `env`: a hash that is the same in every process
// and version (absl::Hash is seeded per process, so assignments would not be reproducible).
uint64_t RendezvousScore(absl::string_view agent_id, const ChainEnv& env);

// The moves that take `owners` (environment → agent id; may name agents that are gone or
// environments that are gone) to a balanced assignment of `envs` over `agents`.
// Deterministic for the same inputs. After applying the moves:
//  - each environment that some agent's selector matches is owned by one such agent, the
//    others by nobody (and `owners` holds no environment outside `envs`);
//  - an owner that is live and eligible keeps the environment unless an agent below its
//    share takes it;
//  - when every agent may serve every environment, owned counts differ by at most one.
std::vector<OwnerMove> Rebalance(const std::vector<ChainEnv>& envs,
                                 const std::vector<AssignableAgent>& agents,
                                 const absl::flat_hash_map<ChainEnv, std::string>& owners);

}  // namespace chainscale

#endif  // CHAINSCALE_CONTROL_PLANE_ASSIGNER_H_
