// Backend: where an actuator runs the replicas of one chainlet (local processes, Docker
// containers) and how it tells which run. A backend only acts; the Reconciler decides what
// to start and stop, in what order, and when a replica has drained long enough.
#ifndef CHAINSCALE_TOOLS_ACTUATOR_BACKEND_H_
#define CHAINSCALE_TOOLS_ACTUATOR_BACKEND_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace chainscale {

// One running copy of a chainlet.
struct Replica {
  std::string id;  // what the backend knows it by: a pid, a container id
  // Creation order within the chainlet, higher is newer; 0 for a replica the actuator did
  // not create (a container Docker Compose made), which counts as the oldest.
  int64_t serial = 0;
  std::string description;  // for logs: "pid 4242", "container demo-replica-3 (0123456789ab)"
};

class Backend {
 public:
  virtual ~Backend() = default;

  // "process" or "docker", for logs and metric labels.
  virtual std::string kind() const = 0;

  // The replicas alive now, oldest first (by serial). Replicas that died since are
  // forgotten. The first call after a restart adopts the replicas still alive.
  virtual absl::StatusOr<std::vector<Replica>> List() = 0;

  // Starts one more replica.
  virtual absl::StatusOr<Replica> Start() = 0;

  // Asks `replica` to finish, giving it `drain_period` to do so (SIGTERM; Docker: a stop
  // with that timeout, then removal). Returns without waiting for it to go.
  virtual absl::Status Stop(const Replica& replica, absl::Duration drain_period) = 0;

  // `replica` outlived its drain period: ends it now (SIGKILL; Docker: forced removal).
  virtual absl::Status Kill(const Replica& replica) = 0;
};

}  // namespace chainscale

#endif  // CHAINSCALE_TOOLS_ACTUATOR_BACKEND_H_
