// The --target flag: which chainlet an actuator actuates and with what backend, in one
// line that a compose file or a script can say.
//   demo/production/HelloWorld=process:chainscale-replica --http_listen=127.0.0.1:{port}
//   demo/production/HelloWorld=docker:service=replica
//   demo/production/HelloWorld=docker:label=com.example.role=llm,template=llm-template
#ifndef CHAINSCALE_TOOLS_ACTUATOR_TARGET_SPEC_H_
#define CHAINSCALE_TOOLS_ACTUATOR_TARGET_SPEC_H_

#include <string>
#include <variant>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace chainscale {

// Local processes: copies of a command. The template is split into words as a shell
// would (quotes, variables), without command substitution; {port} becomes a free
// loopback port per copy and {index} the copy's number (0, 1, ...: the lowest free).
struct ProcessBackendSpec {
  std::string command;
};

// Docker containers of a labelled service, created by cloning a container of it.
struct DockerBackendSpec {
  // "key=value": the label that selects the service's containers. `service=NAME` stands
  // for com.docker.compose.service=NAME.
  std::string label;
  // Name or id of the container to clone (may be kept stopped); empty: the oldest
  // container of the service that the actuator did not create.
  std::string template_container;
};

struct TargetSpec {
  std::string chain_id;
  std::string env_name;
  std::string chainlet_name;
  std::variant<ProcessBackendSpec, DockerBackendSpec> backend;

  // "chain/env/chainlet", as logs and labels show it.
  std::string name() const;
};

// Parses "<chain_id>/<env_name>/<chainlet_name>=<backend>", the backend being
// "process:<command template>" or "docker:service=<name>" or "docker:label=<key>=<value>",
// the docker forms optionally followed by ",template=<container>". INVALID_ARGUMENT
// saying what is wrong.
absl::StatusOr<TargetSpec> ParseTarget(absl::string_view text);

}  // namespace chainscale

#endif  // CHAINSCALE_TOOLS_ACTUATOR_TARGET_SPEC_H_
