// Syntax of the names users choose: chain ids, environment names and chainlet names.
// Names become store keys and metric labels, so they are restricted to a safe alphabet.
#ifndef CHAINSCALE_COMMON_NAMES_H_
#define CHAINSCALE_COMMON_NAMES_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace chainscale {

// Each returns what is wrong with `name`, or nothing when it is valid.
// Chain id: 1-63 characters of [a-z0-9-], starting with a letter or digit.
std::optional<std::string> ChainIdProblem(absl::string_view name);
// Environment: 1-63 characters of [a-z0-9-], starting with a letter.
std::optional<std::string> EnvironmentNameProblem(absl::string_view name);
// Chainlet: 1-63 characters of [A-Za-z0-9_-], starting with a letter or digit.
std::optional<std::string> ChainletNameProblem(absl::string_view name);

// Chain display name (its length is the caller's to limit): printable Unicode text. Refused:
// invalid UTF-8; control characters (C0 including NUL, tab, newline and ESC, which starts
// terminal escape sequences; DEL; C1); line and paragraph separators; and the
// bidirectional formatting marks (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069)
// that make text display in another order than it is stored.
std::optional<std::string> DisplayNameProblem(absl::string_view name);

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_NAMES_H_
