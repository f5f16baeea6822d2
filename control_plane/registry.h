// Registry: the management API's core. Creates, reads and deletes chains and
// environments and applies partial settings updates, each write validated whole and
// committed to the Store as one revision. It knows nothing of gRPC or HTTP: the gRPC
// service and the REST gateway both call it.
#ifndef CHAINSCALE_CONTROL_PLANE_REGISTRY_H_
#define CHAINSCALE_CONTROL_PLANE_REGISTRY_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "chainscale/v1/control_plane.pb.h"
#include "common/clock.h"
#include "common/settings.h"
#include "control_plane/store.h"

namespace chainscale {

struct RegistryOptions {
  SettingsLimits settings_limits;
  int max_chainlets_per_chain = 1000;
  int max_environments_per_chain = 64;
  int max_name_length = 256;  // display name of a chain
  int default_page_size = 100;
  int max_page_size = 1000;
};

// What an update did.
struct UpdateOutcome {
  bool changed = false;  // false: the merged settings equal the stored ones
  int64_t revision = 0;  // the committed revision when changed
  std::string message;   // what changed, for people
};

class Registry {
 public:
  // `store` and `clock` must outlive the registry. `on_commit`, when given, runs after
  // every committed revision (the Sync hub uses it to wake the agents' streams).
  Registry(Store* store, RegistryOptions options, const Clock& clock,
           std::function<void()> on_commit = nullptr);

  absl::StatusOr<v1::Chain> CreateChain(const v1::CreateChainRequest& request)
      ABSL_LOCKS_EXCLUDED(write_mu_);
  absl::StatusOr<v1::Chain> GetChain(absl::string_view chain_id) const;
  absl::StatusOr<v1::ListChainsResponse> ListChains(const v1::ListChainsRequest& request) const;
  // Returns the revision of the deletion.
  absl::StatusOr<int64_t> DeleteChain(absl::string_view chain_id)
      ABSL_LOCKS_EXCLUDED(write_mu_);

  absl::StatusOr<v1::ChainEnvironment> CreateEnvironment(
      const v1::CreateEnvironmentRequest& request) ABSL_LOCKS_EXCLUDED(write_mu_);
  // Returns the revision of the deletion. `production` cannot be deleted.
  absl::StatusOr<int64_t> DeleteEnvironment(absl::string_view chain_id,
                                            absl::string_view env_name)
      ABSL_LOCKS_EXCLUDED(write_mu_);
  absl::StatusOr<v1::ChainEnvironment> GetChainEnvironment(absl::string_view chain_id,
                                                           absl::string_view env_name) const;

  // Applies a partial update atomically: all of it, or nothing with the reason.
  absl::StatusOr<UpdateOutcome> UpdateSettings(
      const v1::UpdateChainletEnvironmentAutoscalingSettingsRequest& request)
      ABSL_LOCKS_EXCLUDED(write_mu_);

 private:
  // The chain, INVALID_ARGUMENT for a malformed id, NOT_FOUND for an unknown one.
  absl::StatusOr<v1::Chain> LoadChain(absl::string_view chain_id) const;
  // The chain, and NOT_FOUND unless it has the environment.
  absl::StatusOr<v1::Chain> LoadChainWithEnvironment(absl::string_view chain_id,
                                                     absl::string_view env_name) const;
  std::string NewChainId() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Commits and tells the listener.
  absl::Status Commit(const StoreMutation& mutation) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);

  Store* const store_;
  const RegistryOptions options_;
  const Clock& clock_;
  const std::function<void()> on_commit_;
  // One read-validate-commit at a time, so validation sees what the commit replaces.
  absl::Mutex write_mu_;
  absl::BitGen random_ ABSL_GUARDED_BY(write_mu_);
};

}  // namespace chainscale

#endif  // CHAINSCALE_CONTROL_PLANE_REGISTRY_H_
