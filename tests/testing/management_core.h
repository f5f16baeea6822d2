// A Management core over a fresh, unsynced store in a temporary directory, with a fake
// clock: for tests that drive the front doors (the REST gateway's Handle) without sockets.
#ifndef CHAINSCALE_TESTS_TESTING_MANAGEMENT_CORE_H_
#define CHAINSCALE_TESTS_TESTING_MANAGEMENT_CORE_H_

#include <memory>

#include "control_plane/committer.h"
#include "control_plane/management.h"
#include "control_plane/registry.h"
#include "control_plane/store.h"
#include "control_plane/sync_hub.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/temp_dir.h"

namespace chainscale::testing {

class ManagementCore {
 public:
  ManagementCore() {
    StoreOptions options;
    options.path = dir_.str();
    options.sync_writes = false;
    store_ = Store::Open(options).value();
    committer_ = std::make_unique<Committer>(
        store_.get(), [this](const auto& changes) { hub_->Published(changes); });
    hub_ = std::make_unique<SyncHub>(store_.get(), committer_.get(), SyncHubOptions{});
    registry_ = std::make_unique<Registry>(store_.get(), committer_.get(), RegistryOptions{},
                                           clock_);
    management_ = std::make_unique<Management>(registry_.get(), hub_.get(), nullptr,
                                                absl::Milliseconds(1));
  }
  // In the server's order: the committer drains before the hub its callbacks reach goes.
  ~ManagementCore() {
    management_.reset();
    registry_.reset();
    committer_.reset();
    hub_.reset();
    store_.reset();
  }

  Store& store() { return *store_; }
  Registry& registry() { return *registry_; }
  Management& management() { return *management_; }
  FakeClock& clock() { return clock_; }

 private:
  ScopedTempDir dir_;
  FakeClock clock_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Committer> committer_;
  std::unique_ptr<SyncHub> hub_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<Management> management_;
};

}  // namespace chainscale::testing

#endif  // CHAINSCALE_TESTS_TESTING_MANAGEMENT_CORE_H_
