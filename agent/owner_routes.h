// OwnerRoutes: the agent's copy of who owns which chain environment (DESIGN §11), built
// from the Sync stream's SyncOwners messages: a whole table (reset, possibly in several
// messages) and then hand-overs. It turns them into what this agent gains and loses, for
// the DecisionLoop, and answers where a report for another agent's environment goes. A
// route with a lower epoch than the one held is stale and ignored.
#ifndef CHAINSCALE_AGENT_OWNER_ROUTES_H_
#define CHAINSCALE_AGENT_OWNER_ROUTES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "agent/decision_loop.h"
#include "chainscale/v1/control_plane.pb.h"

namespace chainscale {

class OwnerRoutes {
 public:
  explicit OwnerRoutes(std::string agent_id) : agent_id_(std::move(agent_id)) {}

  struct Update {
    bool reset = false;  // `changes` is the whole set this agent owns
    std::vector<OwnedEnvironment> changes;
  };
  // Takes one message; nothing while a table is still arriving in parts.
  std::optional<Update> Apply(const v1::SyncOwners& message) ABSL_LOCKS_EXCLUDED(mu_);

  // The owner of an environment, when one is known.
  std::optional<v1::EnvironmentRoute> Find(const std::string& chain_id,
                                           const std::string& env_name) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // Environments this agent owns.
  int64_t owned() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  static std::string Key(const std::string& chain_id, const std::string& env_name);

  const std::string agent_id_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, v1::EnvironmentRoute> routes_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::EnvironmentRoute> table_parts_ ABSL_GUARDED_BY(mu_);
  bool in_table_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace chainscale

#endif  // CHAINSCALE_AGENT_OWNER_ROUTES_H_
