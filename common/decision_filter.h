// DecisionFilter: which chainlets' decisions a watch or a listing asks for (one chain, one
// chain environment, or everything), and its validation, shared by the agent's watch and
// the control plane's decision feed.
#ifndef CHAINSCALE_COMMON_DECISION_FILTER_H_
#define CHAINSCALE_COMMON_DECISION_FILTER_H_

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "chainscale/v1/settings.pb.h"

namespace chainscale {

struct DecisionFilter {
  std::string chain_id;  // empty: every chain
  std::string env_name;  // empty: every environment (set only with chain_id)

  bool Matches(const v1::ScalingDecision& d) const {
    return (chain_id.empty() || d.chain_id() == chain_id) &&
           (env_name.empty() || d.env_name() == env_name);
  }
};

// INVALID_ARGUMENT when a decision filter names an environment without its chain, or a
// name that is not a valid chain id or environment name.
absl::Status ValidateDecisionFilter(absl::string_view chain_id, absl::string_view env_name);

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_DECISION_FILTER_H_
