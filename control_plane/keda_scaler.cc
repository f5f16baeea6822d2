#include "control_plane/keda_scaler.h"

#include <algorithm>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/chainlet_key.h"
#include "common/error_text.h"
#include "common/field_violations.h"
#include "common/names.h"

namespace chainscale {
namespace {

const std::string* Find(const ScalerMetadata& metadata, absl::string_view key) {
  auto it = metadata.find(std::string(key));
  return it == metadata.end() ? nullptr : &it->second;
}

std::string ViolationField(absl::string_view key) { return absl::StrCat("scalerMetadata.", key); }

}  // namespace

std::string ScaledChainlet::key() const {
  return EncodeChainletKey(chain_id, env_name, chainlet_name);
}

std::string ScaledChainlet::metric_name() const {
  std::string chainlet = absl::AsciiStrToLower(chainlet_name);
  std::replace(chainlet.begin(), chainlet.end(), '_', '-');
  return absl::StrCat("chainscale-", chain_id, "-", env_name, "-", chainlet);
}

absl::StatusOr<ScaledChainlet> ParseScaledChainlet(const ScalerMetadata& metadata) {
  std::vector<FieldViolation> violations;
  ScaledChainlet out;
  // Reads one name: missing or empty is a violation, so is a name its check refuses.
  auto read = [&](absl::string_view key, std::optional<std::string> (*problem)(absl::string_view),
                  std::string* into) {
    const std::string* value = Find(metadata, key);
    if (value == nullptr || value->empty()) {
      violations.push_back(
          {ViolationField(key), absl::StrCat("missing: the trigger's metadata must set ", key)});
      return;
    }
    if (std::optional<std::string> p = problem(*value)) {
      violations.push_back({ViolationField(key), *p});
      return;
    }
    *into = *value;
  };
  read(kScalerChainId, &ChainIdProblem, &out.chain_id);
  if (const std::string* env = Find(metadata, kScalerEnvName); env == nullptr || env->empty()) {
    out.env_name = std::string(kDefaultScalerEnvironment);
  } else {
    read(kScalerEnvName, &EnvironmentNameProblem, &out.env_name);
  }
  read(kScalerChainletName, &ChainletNameProblem, &out.chainlet_name);
  if (!violations.empty()) return InvalidArgumentWithViolations(violations);
  return out;
}

absl::Status AuthorizeScaledObject(const ApiKeys& keys, const ScalerMetadata& metadata,
                                   std::optional<absl::string_view> authorization) {
  if (keys.empty()) return absl::OkStatus();
  absl::string_view metadata_key = kScalerApiKey;
  const std::string* in_metadata = Find(metadata, metadata_key);
  if (in_metadata == nullptr) {
    metadata_key = kScalerApiKeyFromEnv;
    in_metadata = Find(metadata, metadata_key);
  }
  absl::Status metadata_status;
  if (in_metadata != nullptr) {
    const absl::string_view key = absl::StripAsciiWhitespace(*in_metadata);
    metadata_status = key.empty() ? absl::UnauthenticatedError("the key is empty")
                                  : keys.Check(absl::StrCat("Api-Key ", key));
    if (metadata_status.ok()) return metadata_status;
  }
  if (authorization.has_value()) {
    absl::Status header_status = keys.Check(*authorization);
    if (header_status.ok() || in_metadata == nullptr) return header_status;
  }
  if (in_metadata != nullptr) {
    return absl::UnauthenticatedError(
        absl::StrCat(ViolationField(metadata_key), ": ", metadata_status.message()));
  }
  return absl::UnauthenticatedError(
      "missing API key: put one in the trigger's metadata as api_key (or api_keyFromEnv, "
      "naming an environment variable of the scaled workload), or send \"authorization: "
      "Api-Key KEY\"");
}

absl::StatusOr<int32_t> KedaScaler::DesiredReplicas(const ScaledChainlet& chainlet) const {
  absl::StatusOr<std::optional<v1::ChainletState>> state =
      store_->GetChainlet(chainlet.chain_id, chainlet.env_name, chainlet.chainlet_name);
  if (!state.ok()) return state.status();
  if (!state->has_value()) return NotFound(chainlet);
  const v1::ChainletState& found = **state;
  if (found.has_decision()) return found.decision().desired_replicas();
  return found.settings().min_replica();
}

absl::Status KedaScaler::NotFound(const ScaledChainlet& chainlet) const {
  absl::StatusOr<v1::Chain> chain = store_->GetChain(chainlet.chain_id);
  if (!chain.ok()) {
    if (!absl::IsNotFound(chain.status())) return chain.status();
    return absl::NotFoundError(absl::StrCat("chain ", QuotedName(chainlet.chain_id), " not found"));
  }
  if (std::find(chain->environments().begin(), chain->environments().end(), chainlet.env_name) ==
      chain->environments().end()) {
    return absl::NotFoundError(absl::StrCat("environment ", QuotedName(chainlet.env_name),
                                            " of chain ", QuotedName(chainlet.chain_id),
                                            " not found"));
  }
  return absl::NotFoundError(absl::StrCat("chainlet ", QuotedName(chainlet.chainlet_name),
                                          " not found in chain ", QuotedName(chainlet.chain_id),
                                          " environment ", QuotedName(chainlet.env_name)));
}

}  // namespace chainscale
