// Registry: the management API's core. Creates, reads and deletes chains and
// environments and applies partial settings updates, each write validated whole and
// committed as one revision. Writes to one chain run one at a time (validation sees what
// the commit replaces); writes to different chains run at once and share their fsync in
// the Committer's group commit. It knows nothing of gRPC or HTTP: the gRPC service and the
// REST gateway both call it.
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
#include "control_plane/committer.h"
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
  // `store`, `committer` and `clock` must outlive the registry.
  Registry(Store* store, Committer* committer, RegistryOptions options, const Clock& clock);

  absl::StatusOr<v1::Chain> CreateChain(const v1::CreateChainRequest& request);
  absl::StatusOr<v1::Chain> GetChain(absl::string_view chain_id) const;
  absl::StatusOr<v1::ListChainsResponse> ListChains(const v1::ListChainsRequest& request) const;
  // Returns the revision of the deletion.
  absl::StatusOr<int64_t> DeleteChain(absl::string_view chain_id);

  absl::StatusOr<v1::ChainEnvironment> CreateEnvironment(
      const v1::CreateEnvironmentRequest& request);
  // Returns the revision of the deletion. `production` cannot be deleted.
  absl::StatusOr<int64_t> DeleteEnvironment(absl::string_view chain_id,
                                            absl::string_view env_name);
  absl::StatusOr<v1::ChainEnvironment> GetChainEnvironment(absl::string_view chain_id,
                                                           absl::string_view env_name) const;

  // Applies a partial update atomically: all of it, or nothing with the reason.
  absl::StatusOr<UpdateOutcome> UpdateSettings(
      const v1::UpdateChainletEnvironmentAutoscalingSettingsRequest& request);

 private:
  // The chain, INVALID_ARGUMENT for a malformed id, NOT_FOUND for an unknown one.
  absl::StatusOr<v1::Chain> LoadChain(absl::string_view chain_id) const;
  // The chain, and NOT_FOUND unless it has the environment.
  absl::StatusOr<v1::Chain> LoadChainWithEnvironment(absl::string_view chain_id,
                                                     absl::string_view env_name) const;
  std::string NewChainId() ABSL_LOCKS_EXCLUDED(random_mu_);
  // The lock that serialises writes to `chain_id` (one of a fixed set, by hash).
  absl::Mutex& ChainLock(absl::string_view chain_id) const;

  Store* const store_;
  Committer* const committer_;
  const RegistryOptions options_;
  const Clock& clock_;
  // One read-validate-commit at a time per chain, so validation sees what the commit
  // replaces; chains that share a stripe wait for each other, which is harmless.
  static constexpr int kChainLockStripes = 256;
  mutable absl::Mutex chain_locks_[kChainLockStripes];
  absl::Mutex random_mu_;
  absl::BitGen random_ ABSL_GUARDED_BY(random_mu_);
};

}  // namespace chainscale

#endif  // CHAINSCALE_CONTROL_PLANE_REGISTRY_H_
