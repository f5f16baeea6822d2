#include "common/auth.h"

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace chainscale {
namespace {

absl::Status AddKey(absl::string_view raw, absl::string_view origin,
                    std::vector<std::string>* keys) {
  const absl::string_view key = absl::StripAsciiWhitespace(raw);
  if (key.empty() || absl::StartsWith(key, "#")) return absl::OkStatus();
  for (char c : key) {
    if (absl::ascii_isspace(c) || absl::ascii_iscntrl(c)) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ": a key contains whitespace or a control character"));
    }
  }
  keys->emplace_back(key);
  return absl::OkStatus();
}

}  // namespace

bool ConstantTimeEquals(absl::string_view secret, absl::string_view candidate) {
  unsigned char diff = secret.size() == candidate.size() ? 0 : 1;
  for (size_t i = 0; i < secret.size(); ++i) {
    const char c = candidate.empty() ? '\0' : candidate[i % candidate.size()];
    diff |= static_cast<unsigned char>(secret[i] ^ c);
  }
  return diff == 0;
}

absl::StatusOr<ApiKeys> ApiKeys::Load(absl::string_view file_path, absl::string_view env_value) {
  std::vector<std::string> keys;
  if (!file_path.empty()) {
    std::ifstream file{std::string(file_path)};
    if (!file) return absl::NotFoundError(absl::StrCat("cannot read keys file ", file_path));
    std::string line;
    while (std::getline(file, line)) {
      if (absl::Status s = AddKey(line, file_path, &keys); !s.ok()) return s;
    }
  }
  for (absl::string_view part : absl::StrSplit(env_value, ',')) {
    if (absl::Status s = AddKey(part, "environment", &keys); !s.ok()) return s;
  }
  return ApiKeys(std::move(keys));
}

absl::Status ApiKeys::Check(absl::string_view authorization) const {
  if (authorization.empty()) {
    return absl::UnauthenticatedError(
        "missing authorization: send \"authorization: Api-Key KEY\" or \"Bearer KEY\"");
  }
  absl::string_view presented = authorization;
  if (!absl::ConsumePrefix(&presented, "Api-Key ") &&
      !absl::ConsumePrefix(&presented, "api-key ") &&
      !absl::ConsumePrefix(&presented, "Bearer ") &&
      !absl::ConsumePrefix(&presented, "bearer ")) {
    return absl::UnauthenticatedError(
        "authorization must be \"Api-Key KEY\" or \"Bearer KEY\"");
  }
  presented = absl::StripAsciiWhitespace(presented);
  bool match = false;
  for (const std::string& key : keys_) match |= ConstantTimeEquals(key, presented);
  if (!match) return absl::UnauthenticatedError("the key is not valid");
  return absl::OkStatus();
}

}  // namespace chainscale
