#include "common/names.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace chainscale {
namespace {

constexpr size_t kMaxNameLength = 63;

std::optional<std::string> Check(absl::string_view name, bool (*allowed)(char),
                                 bool (*first_allowed)(char), absl::string_view alphabet,
                                 absl::string_view first) {
  if (name.empty()) return std::string("must not be empty");
  if (name.size() > kMaxNameLength) {
    return absl::StrCat("must be at most ", kMaxNameLength, " characters, got ", name.size());
  }
  for (char c : name) {
    if (!allowed(c)) {
      return absl::StrCat("may only contain ", alphabet, "; \"", absl::CHexEscape(name),
                          "\" does not");
    }
  }
  if (!first_allowed(name[0])) {
    return absl::StrCat("must start with ", first, "; \"", name, "\" does not");
  }
  return std::nullopt;
}

bool LowerDigitDash(char c) {
  return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-';
}
bool AnyCaseDigitDashUnderscore(char c) {
  return absl::ascii_isalnum(c) || c == '-' || c == '_';
}
bool LowerOrDigit(char c) { return absl::ascii_islower(c) || absl::ascii_isdigit(c); }
bool Lower(char c) { return absl::ascii_islower(c); }
bool AlnumChar(char c) { return absl::ascii_isalnum(c); }

}  // namespace

std::optional<std::string> ChainIdProblem(absl::string_view name) {
  return Check(name, LowerDigitDash, LowerOrDigit, "lowercase letters, digits and '-'",
               "a lowercase letter or digit");
}

std::optional<std::string> EnvironmentNameProblem(absl::string_view name) {
  return Check(name, LowerDigitDash, Lower, "lowercase letters, digits and '-'",
               "a lowercase letter");
}

std::optional<std::string> ChainletNameProblem(absl::string_view name) {
  return Check(name, AnyCaseDigitDashUnderscore, AlnumChar, "letters, digits, '_' and '-'",
               "a letter or digit");
}

}  // namespace chainscale
