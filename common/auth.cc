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

absl::StatusOr<size_t> ApiKeys::Identify(absl::string_view authorization) const {
  auto is_blank = [](char c) { return c == ' ' || c == '\t'; };
  while (!authorization.empty() && is_blank(authorization.front())) authorization.remove_prefix(1);
  while (!authorization.empty() && is_blank(authorization.back())) authorization.remove_suffix(1);
  if (authorization.empty()) {
    return absl::UnauthenticatedError(
        "missing authorization: send \"authorization: Api-Key KEY\" or \"Bearer KEY\"");
  }
  const size_t blank = authorization.find_first_of(" \t");
  const absl::string_view scheme = authorization.substr(0, blank);
  if (blank == absl::string_view::npos ||
      !(absl::EqualsIgnoreCase(scheme, "Api-Key") || absl::EqualsIgnoreCase(scheme, "Bearer"))) {
    return absl::UnauthenticatedError(
        "authorization must be \"Api-Key KEY\" or \"Bearer KEY\"");
  }
  absl::string_view presented = authorization.substr(blank);
  while (!presented.empty() && is_blank(presented.front())) presented.remove_prefix(1);
  // Every key is compared, matching or not, so the time taken does not tell which one did.
  size_t match = keys_.size();
  for (size_t i = 0; i < keys_.size(); ++i) {
    if (ConstantTimeEquals(keys_[i], presented)) match = i;
  }
  if (match == keys_.size()) return absl::UnauthenticatedError("the key is not valid");
  return match;
}

}  // namespace chainscale
