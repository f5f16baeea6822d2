// libFuzzer target for the REST gateway's JSON side (./dev fuzz): any bytes as a request
// body go through ParseJsonBody, the settings validation the registry runs on what
// parsed, and the JSON error printer. It aborts when
// - a rejected body is not INVALID_ARGUMENT, or its error JSON does not parse, has a
//   message over 1 KiB or more than 10 field violations;
// - settings that passed MergeAndValidate fail Validate (something invalid would be
//   stored);
// and, built with ASan and UBSan, on any memory or undefined-behaviour error.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "chainscale/v1/control_plane.pb.h"
#include "common/settings.h"
#include "common/settings_proto.h"
#include "control_plane/rest_json.h"

namespace chainscale {
namespace {

void Require(bool condition, const char* what, absl::string_view detail) {
  if (condition) return;
  std::fprintf(stderr, "invariant broken: %s: %.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

// A rejection is INVALID_ARGUMENT, and its error body is bounded JSON.
void CheckRejection(const absl::Status& status) {
  if (status.ok()) return;
  Require(status.code() == absl::StatusCode::kInvalidArgument, "code", status.ToString());
  const std::string json = ErrorJson(status);
  google::protobuf::Struct body;
  Require(google::protobuf::util::JsonStringToMessage(json, &body).ok(), "error JSON", json);
  const auto& error = body.fields().at("error").struct_value().fields();
  Require(error.at("message").string_value().size() <= 1024, "message size", json);
  if (auto it = error.find("field_violations"); it != error.end()) {
    Require(it->second.list_value().values_size() <= 10, "violation count", json);
  }
}

void CheckSettings(const v1::UpdateChainletEnvironmentAutoscalingSettingsRequest& request) {
  const SettingsLimits limits;
  for (int i = 0; i < request.updates_size(); ++i) {
    for (absl::string_view env : {kProductionEnvironment, kDevelopmentEnvironment}) {
      absl::StatusOr<AutoscalingSettings> merged =
          MergeAndValidate(DefaultSettings(env), UpdateFromProto(request.updates(i).autoscaling_settings()),
                           env, limits, absl::StrCat("updates[", i, "].autoscaling_settings."));
      if (merged.ok()) {
        Require(Validate(*merged, env, limits).ok(), "accepted settings are valid",
                request.DebugString());
      } else {
        CheckRejection(merged.status());
      }
    }
  }
}

}  // namespace
}  // namespace chainscale

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace chainscale;
  const absl::string_view body(reinterpret_cast<const char*>(data), size);
  v1::UpdateChainletEnvironmentAutoscalingSettingsRequest update;
  const absl::Status parsed = ParseJsonBody(body, &update);
  CheckRejection(parsed);
  if (parsed.ok()) CheckSettings(update);
  v1::CreateEnvironmentRequest create;
  CheckRejection(ParseJsonBody(body, &create));
  return 0;
}
