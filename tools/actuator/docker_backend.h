// DockerBackend: the replicas of one chainlet as containers of a labelled service, through
// the Docker Engine API (v1.41, docker.io 20.10 and later) on the daemon's unix socket.
//
// - List: the service's containers (GET /containers/json, all states, filtered by the
//   service label). Running ones are replicas: those the actuator created carry
//   dev.chainscale.target=<chain/env/chainlet> and dev.chainscale.serial=<n> (so a
//   restarted actuator adopts them and knows their order); a running container it did not
//   create (the one Docker Compose made) counts as the oldest replica. Stopped containers
//   the actuator created are removed.
// - Start: clones a container of the service (the template: named, or the oldest one the
//   actuator did not create, running or kept stopped): its image, command, environment,
//   labels and host configuration (published host ports left out: clones cannot share
//   them), and its networks with their aliases, so that DNS round robin over the service
//   name reaches the clones too. POST /containers/create joins the first network (API 1.41
//   takes one), POST /networks/{id}/connect the others, then POST /containers/{id}/start.
// - Stop: POST /containers/{id}/stop with the drain period as its timeout (the daemon
//   sends the container's stop signal, then SIGKILL), then DELETE /containers/{id}, on a
//   worker thread so that several replicas drain at once. A container the actuator did not
//   create is stopped and kept (it is the template of later clones).
// - Kill: DELETE /containers/{id}?force=true (POST /containers/{id}/kill for a container the
//   actuator did not create).
#ifndef CHAINSCALE_TOOLS_ACTUATOR_DOCKER_BACKEND_H_
#define CHAINSCALE_TOOLS_ACTUATOR_DOCKER_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/http_client.h"
#include "common/worker_pool.h"
#include "tools/actuator/backend.h"

namespace chainscale {

// Labels on the containers the actuator creates.
inline constexpr char kTargetLabel[] = "dev.chainscale.target";
inline constexpr char kSerialLabel[] = "dev.chainscale.serial";

struct DockerBackendOptions {
  // "chain/env/chainlet": the value of kTargetLabel on this target's containers.
  std::string target;
  // Name prefix of the containers it creates ("<prefix>-<serial>").
  std::string name_prefix;
  // The daemon: "unix:///var/run/docker.sock" (or "unix:/path").
  std::string docker_host = "unix:///var/run/docker.sock";
  // "key=value" selecting the service's containers.
  std::string label;
  // Name or id of the container to clone; empty: see above.
  std::string template_container;
  // Each call to the daemon but a stop (which gets the drain period on top).
  absl::Duration call_timeout = absl::Seconds(30);
  // Stops under way at once.
  int stop_threads = 4;
};

class DockerBackend final : public Backend {
 public:
  // INVALID_ARGUMENT for a docker_host that is not a unix socket or a label without '='.
  static absl::StatusOr<std::unique_ptr<DockerBackend>> Create(DockerBackendOptions options);
  // Waits for the stops under way.
  ~DockerBackend() override;

  std::string kind() const override { return "docker"; }
  // UNAVAILABLE when the daemon cannot be reached.
  absl::StatusOr<std::vector<Replica>> List() override;
  // FAILED_PRECONDITION when there is no container to clone.
  absl::StatusOr<Replica> Start() override;
  absl::Status Stop(const Replica& replica, absl::Duration drain_period) override;
  absl::Status Kill(const Replica& replica) override;

 private:
  explicit DockerBackend(DockerBackendOptions options, std::string socket);

  absl::StatusOr<HttpClientResponse> Call(const std::string& method, const std::string& path,
                                          const std::string& body = "",
                                          absl::Duration timeout = absl::ZeroDuration()) const;
  // DELETE /containers/{id}, a container already gone being no error.
  absl::Status Remove(const std::string& id, bool force) const;

  const DockerBackendOptions options_;
  const std::string socket_;  // "unix:/var/run/docker.sock", as HttpCall takes it
  // From the last List (one thread calls List and Start).
  std::string template_id_;
  int64_t next_serial_ = 1;
  WorkerPool stoppers_;
};

}  // namespace chainscale

#endif  // CHAINSCALE_TOOLS_ACTUATOR_DOCKER_BACKEND_H_
