#include "common/selector.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/names.h"

namespace chainscale {

bool SelectorMatches(const v1::Selector& selector, absl::string_view chain_id,
                     absl::string_view env_name) {
  if (selector.chain_environments().empty()) return true;
  for (const v1::ChainEnvironmentRef& ref : selector.chain_environments()) {
    if (ref.chain_id() == chain_id && (ref.env_name().empty() || ref.env_name() == env_name)) {
      return true;
    }
  }
  return false;
}

absl::StatusOr<v1::Selector> ParseSelector(absl::string_view text) {
  v1::Selector selector;
  for (absl::string_view entry : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    entry = absl::StripAsciiWhitespace(entry);
    std::vector<std::string> parts = absl::StrSplit(entry, '/');
    if (parts.size() > 2 || ChainIdProblem(parts[0]).has_value() ||
        (parts.size() == 2 && EnvironmentNameProblem(parts[1]).has_value())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "selector entry \"", entry, "\" is not \"chain\" or \"chain/environment\""));
    }
    auto* ref = selector.add_chain_environments();
    ref->set_chain_id(parts[0]);
    if (parts.size() == 2) ref->set_env_name(parts[1]);
  }
  return selector;
}

}  // namespace chainscale
