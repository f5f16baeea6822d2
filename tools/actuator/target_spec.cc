#include "tools/actuator/target_spec.h"

#include <optional>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/names.h"

namespace chainscale {
namespace {

absl::Status Invalid(absl::string_view text, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat("--target=", text, ": ", problem));
}

// "service=<name>" or "label=<key>=<value>", then optionally ",template=<container>".
absl::StatusOr<DockerBackendSpec> ParseDocker(absl::string_view text, absl::string_view spec) {
  DockerBackendSpec docker;
  bool selected = false;
  for (absl::string_view item : absl::StrSplit(spec, ',')) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
    if (kv.first == "service" || kv.first == "label") {
      if (selected) return Invalid(text, "give only one of service=<name> and label=<key>=<value>");
      selected = true;
      if (kv.first == "service") {
        if (kv.second.empty()) return Invalid(text, "service=<name> needs a name");
        docker.label = absl::StrCat("com.docker.compose.service=", kv.second);
      } else {
        std::pair<absl::string_view, absl::string_view> label =
            absl::StrSplit(kv.second, absl::MaxSplits('=', 1));
        if (label.first.empty() || !absl::StrContains(kv.second, '=')) {
          return Invalid(text, "label=<key>=<value> needs a key and a value");
        }
        docker.label = std::string(kv.second);
      }
    } else if (kv.first == "template") {
      if (kv.second.empty()) return Invalid(text, "template=<container> needs a container");
      docker.template_container = std::string(kv.second);
    } else if (!item.empty()) {
      return Invalid(text, absl::StrCat("unknown docker option \"", kv.first,
                                        "\" (service, label or template)"));
    }
  }
  if (!selected) {
    return Invalid(text, "docker: needs service=<name> or label=<key>=<value>");
  }
  return docker;
}

}  // namespace

std::string TargetSpec::name() const {
  return absl::StrCat(chain_id, "/", env_name, "/", chainlet_name);
}

absl::StatusOr<TargetSpec> ParseTarget(absl::string_view text) {
  // Names cannot contain '=' or '/', so the first '=' ends the chainlet's path.
  const size_t equals = text.find('=');
  const std::vector<absl::string_view> path =
      absl::StrSplit(text.substr(0, equals == absl::string_view::npos ? text.size() : equals), '/');
  if (equals == absl::string_view::npos || path.size() != 3) {
    return Invalid(text, "expected <chain_id>/<env_name>/<chainlet_name>=<backend>");
  }
  TargetSpec spec;
  spec.chain_id = std::string(path[0]);
  spec.env_name = std::string(path[1]);
  spec.chainlet_name = std::string(path[2]);
  if (std::optional<std::string> problem = ChainIdProblem(spec.chain_id)) {
    return Invalid(text, absl::StrCat("chain id: ", *problem));
  }
  if (std::optional<std::string> problem = EnvironmentNameProblem(spec.env_name)) {
    return Invalid(text, absl::StrCat("environment name: ", *problem));
  }
  if (std::optional<std::string> problem = ChainletNameProblem(spec.chainlet_name)) {
    return Invalid(text, absl::StrCat("chainlet name: ", *problem));
  }
  absl::string_view backend = text.substr(equals + 1);
  if (absl::ConsumePrefix(&backend, "process:")) {
    if (absl::StripAsciiWhitespace(backend).empty()) {
      return Invalid(text, "process: needs a command");
    }
    spec.backend = ProcessBackendSpec{std::string(backend)};
    return spec;
  }
  if (absl::ConsumePrefix(&backend, "docker:")) {
    absl::StatusOr<DockerBackendSpec> docker = ParseDocker(text, backend);
    if (!docker.ok()) return docker.status();
    spec.backend = *std::move(docker);
    return spec;
  }
  return Invalid(text, "the backend must start with process: or docker:");
}

}  // namespace chainscale
