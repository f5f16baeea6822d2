// Error messages that every client can receive. gRPC carries the message and the field
// violations in trailers, and default clients refuse more than 8 KiB of metadata, so
// DESIGN §14 caps messages at 1 KiB and lists at 10 names followed by "and N more". The
// cores build their messages with QuotedList and QuotedName; the front doors pass every
// status through BoundedStatus.
#ifndef CHAINSCALE_COMMON_ERROR_TEXT_H_
#define CHAINSCALE_COMMON_ERROR_TEXT_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace chainscale {

inline constexpr size_t kMaxErrorMessageBytes = 1024;
inline constexpr size_t kMaxListedNames = 10;
inline constexpr size_t kMaxFieldViolations = 10;

// `text` cut to at most `max_bytes`, never inside a UTF-8 sequence, ending with "..." when
// it was cut.
std::string TruncateUtf8(absl::string_view text, size_t max_bytes);

// `name` in double quotes; a name longer than 64 bytes is cut and followed by its length:
// "xxxx..." (100000 bytes).
std::string QuotedName(absl::string_view name);

// The first `max_names` names, each quoted with QuotedName, then "and N more" for the rest:
// "a", "b", "c" and 290 more.
std::string QuotedList(const std::vector<std::string>& names,
                       size_t max_names = kMaxListedNames);

// `status` with the same code, fit for any client: a message of at most 1 KiB and at most
// 10 field violations, each cut, whose fields and descriptions take at most 2 KiB in all.
// When violations were left out or cut, the message lists those kept and says how many
// more there were.
absl::Status BoundedStatus(const absl::Status& status);

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_ERROR_TEXT_H_
