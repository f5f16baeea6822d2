#include "common/names.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/utf8.h"

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

bool IsControlOrReordering(uint32_t cp) {
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x061C || cp == 0x200E ||
         cp == 0x200F || cp == 0x2028 || cp == 0x2029 || (cp >= 0x202A && cp <= 0x202E) ||
         (cp >= 0x2066 && cp <= 0x2069);
}

}  // namespace

std::optional<std::string> DisplayNameProblem(absl::string_view name) {
  for (size_t i = 0; i < name.size();) {
    const size_t at = i;
    std::optional<uint32_t> cp = DecodeUtf8(name, &i);
    if (!cp.has_value()) return absl::StrCat("must be valid UTF-8; byte ", at, " is not");
    if (IsControlOrReordering(*cp)) {
      return absl::StrCat("must be printable text; it has U+", absl::StrFormat("%04X", *cp),
                          " at byte ", at,
                          " (control characters, escape sequences and bidirectional marks are "
                          "refused)");
    }
  }
  return std::nullopt;
}

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
