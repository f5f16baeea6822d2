// One string per chainlet key, for maps and store keys: chain id, environment and chainlet
// name joined by NUL (names cannot contain NUL), so keys sort by chain, then environment.
#ifndef CHAINSCALE_COMMON_CHAINLET_KEY_H_
#define CHAINSCALE_COMMON_CHAINLET_KEY_H_

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "chainscale/v1/settings.pb.h"

namespace chainscale {

// The prefix shared by every chainlet of a chain (env_name empty) or of one environment.
inline std::string ChainletKeyPrefix(absl::string_view chain_id, absl::string_view env_name) {
  std::string prefix = absl::StrCat(chain_id, absl::string_view("\0", 1));
  if (!env_name.empty()) absl::StrAppend(&prefix, env_name, absl::string_view("\0", 1));
  return prefix;
}

inline std::string EncodeChainletKey(absl::string_view chain_id, absl::string_view env_name,
                                     absl::string_view chainlet_name) {
  return absl::StrCat(ChainletKeyPrefix(chain_id, env_name), chainlet_name);
}

inline std::string EncodeChainletKey(const v1::ChainletKey& key) {
  return EncodeChainletKey(key.chain_id(), key.env_name(), key.chainlet_name());
}

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_CHAINLET_KEY_H_
