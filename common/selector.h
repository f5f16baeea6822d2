// Selectors: which chain environments an agent serves. One definition of matching, used by
// the control plane (what to send an agent) and by the agent (what it answers for), and
// the --selector syntax.
#ifndef CHAINSCALE_COMMON_SELECTOR_H_
#define CHAINSCALE_COMMON_SELECTOR_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "chainscale/v1/control_plane.pb.h"

namespace chainscale {

// True when `selector` selects the chain environment; an empty selector selects all, and
// an entry without env_name selects every environment of its chain.
bool SelectorMatches(const v1::Selector& selector, absl::string_view chain_id,
                     absl::string_view env_name);
inline bool SelectorMatches(const v1::Selector& selector, const v1::ChainletKey& key) {
  return SelectorMatches(selector, key.chain_id(), key.env_name());
}

// Parses comma-separated "chain" or "chain/environment" entries; empty selects all.
absl::StatusOr<v1::Selector> ParseSelector(absl::string_view text);

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_SELECTOR_H_
