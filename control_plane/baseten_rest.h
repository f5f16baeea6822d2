// The mapping between the ControlPlane messages and the bodies of Baseten's management
// REST API (proto/chainscale/v1/baseten_rest.proto) that the REST gateway reads and
// writes. Pure functions: the gateway routes, these translate.
#ifndef CHAINSCALE_CONTROL_PLANE_BASETEN_REST_H_
#define CHAINSCALE_CONTROL_PLANE_BASETEN_REST_H_

#include "absl/strings/string_view.h"
#include "chainscale/v1/baseten_rest.pb.h"
#include "chainscale/v1/control_plane.pb.h"

namespace chainscale {

// POST /v1/chains/{chain_id}/environments's body as a CreateEnvironment request.
v1::CreateEnvironmentRequest CreateEnvironmentFromBaseten(
    absl::string_view chain_id, const v1::CreateChainEnvironmentRequestV1& body);

// A chain environment as Baseten's ChainEnvironmentV1: promotion settings over Baseten's
// defaults, instance types by their given id (Baseten's default 1x2 when none was given),
// no deployment.
v1::ChainEnvironmentV1 ChainEnvironmentToBaseten(const v1::ChainEnvironment& env);

// A chain as Baseten's ChainV1 (no deployments).
v1::ChainV1 ChainToBaseten(const v1::Chain& chain);

}  // namespace chainscale

#endif  // CHAINSCALE_CONTROL_PLANE_BASETEN_REST_H_
