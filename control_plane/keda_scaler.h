// KedaScaler: the core behind KEDA's external scaler protocol (externalscaler.ExternalScaler,
// DESIGN §12). It reads which chainlet a ScaledObject's trigger names and the key it
// carries, names the one metric KEDA hands the HPA, and answers that metric's value, the
// desired replica count of the chainlet's latest stored decision. It knows nothing of
// gRPC: control_plane/external_scaler_service.* is its gRPC face.
#ifndef CHAINSCALE_CONTROL_PLANE_KEDA_SCALER_H_
#define CHAINSCALE_CONTROL_PLANE_KEDA_SCALER_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/auth.h"
#include "control_plane/store.h"
#include "externalscaler/externalscaler.pb.h"

namespace chainscale {

using ScalerMetadata = google::protobuf::Map<std::string, std::string>;

// The trigger metadata keys chainscale reads.
inline constexpr absl::string_view kScalerChainId = "chain_id";
inline constexpr absl::string_view kScalerEnvName = "env_name";
inline constexpr absl::string_view kScalerChainletName = "chainlet_name";
// The key as written in the trigger, and as KEDA passes it after resolving
// `api_keyFromEnv: VARIABLE` from the scaled workload's container environment (KEDA keeps
// the key's name and replaces the value).
inline constexpr absl::string_view kScalerApiKey = "api_key";
inline constexpr absl::string_view kScalerApiKeyFromEnv = "api_keyFromEnv";
// The environment when the trigger names none: every chain has it.
inline constexpr absl::string_view kDefaultScalerEnvironment = "production";

// The chainlet a ScaledObject scales.
struct ScaledChainlet {
  std::string chain_id;
  std::string env_name;
  std::string chainlet_name;

  // Its key in stores and maps (EncodeChainletKey).
  std::string key() const;
  // The metric KEDA gives the HPA: `chainscale-<chain>-<env>-<chainlet>`, lowercase with
  // dashes (chain ids and environments are already; the chainlet's capitals are lowered
  // and its underscores become dashes), as Kubernetes metric names want. Stable for a
  // chainlet; two chainlets whose names differ only there share it, which is harmless:
  // KEDA keeps metrics apart per ScaledObject, and each value is read by the metadata.
  std::string metric_name() const;
};

// The chainlet `metadata` names. INVALID_ARGUMENT with a field violation per problem
// (`scalerMetadata.chain_id`, ...) when chain_id or chainlet_name is missing or a value is
// not a valid name; env_name defaults to production.
absl::StatusOr<ScaledChainlet> ParseScaledChainlet(const ScalerMetadata& metadata);

// OK when `keys` is empty (the control plane runs --insecure) or a valid key comes with
// the call: in `metadata` (api_key, or api_keyFromEnv; spaces and line ends around it are
// ignored, as a Secret made from a file often ends with one) or in `authorization` (the
// gRPC header, "Api-Key KEY" or "Bearer KEY"; nullopt when absent). Either one admits the
// call. UNAUTHENTICATED otherwise, saying what was wrong, never echoing a key.
absl::Status AuthorizeScaledObject(const ApiKeys& keys, const ScalerMetadata& metadata,
                                   std::optional<absl::string_view> authorization);

class KedaScaler {
 public:
  // `store` must outlive the scaler.
  explicit KedaScaler(const Store* store) : store_(store) {}

  // The desired replica count of the chainlet's latest stored decision; its min_replica
  // while none is stored (an agent starts a new chainlet there, and bounds are hard).
  // NOT_FOUND naming the chain, environment or chainlet that does not exist; the store's
  // error when it cannot be read.
  absl::StatusOr<int32_t> DesiredReplicas(const ScaledChainlet& chainlet) const;

 private:
  // NOT_FOUND naming the first of chain, environment and chainlet that does not exist.
  absl::Status NotFound(const ScaledChainlet& chainlet) const;

  const Store* const store_;
};

}  // namespace chainscale

#endif  // CHAINSCALE_CONTROL_PLANE_KEDA_SCALER_H_
