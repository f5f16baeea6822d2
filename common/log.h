// One-line structured logs on stderr, in logfmt:
//   ts=2026-11-23T04:05:06.789Z level=info msg="listening" address=127.0.0.1:50051
#ifndef CHAINSCALE_COMMON_LOG_H_
#define CHAINSCALE_COMMON_LOG_H_

#include <initializer_list>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace chainscale {

enum class LogLevel { kInfo, kWarning, kError };

using LogField = std::pair<absl::string_view, std::string>;

// Writes one line with one write() call, so lines from several threads never interleave.
void Log(LogLevel level, absl::string_view message, std::initializer_list<LogField> fields = {});

inline void LogInfo(absl::string_view message, std::initializer_list<LogField> fields = {}) {
  Log(LogLevel::kInfo, message, fields);
}
inline void LogWarning(absl::string_view message, std::initializer_list<LogField> fields = {}) {
  Log(LogLevel::kWarning, message, fields);
}
inline void LogError(absl::string_view message, std::initializer_list<LogField> fields = {}) {
  Log(LogLevel::kError, message, fields);
}

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_LOG_H_
