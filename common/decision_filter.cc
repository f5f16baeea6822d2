#include "common/decision_filter.h"

#include <optional>
#include <vector>

#include "common/field_violations.h"
#include "common/names.h"

namespace chainscale {

absl::Status ValidateDecisionFilter(absl::string_view chain_id, absl::string_view env_name) {
  if (chain_id.empty() && !env_name.empty()) {
    return InvalidArgumentWithViolations(
        {{"env_name", "needs chain_id: an environment is named within a chain"}});
  }
  std::vector<FieldViolation> v;
  if (!chain_id.empty()) {
    if (std::optional<std::string> p = ChainIdProblem(chain_id)) v.push_back({"chain_id", *p});
  }
  if (!env_name.empty()) {
    if (std::optional<std::string> p = EnvironmentNameProblem(env_name)) {
      v.push_back({"env_name", *p});
    }
  }
  return v.empty() ? absl::OkStatus() : InvalidArgumentWithViolations(v);
}

}  // namespace chainscale
