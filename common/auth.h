// API keys and tokens: loading them from a file or an environment variable, and checking
// an `authorization` value ("Api-Key KEY" or "Bearer KEY") in constant time.
//
// Schemes are case-insensitive, as HTTP defines them (RFC 9110 §11.1): "API-KEY k" and
// "bearer k" are accepted. Any run of spaces or tabs separates scheme and key, and spaces
// or tabs around the whole value are ignored; keys themselves are case-sensitive.
#ifndef CHAINSCALE_COMMON_AUTH_H_
#define CHAINSCALE_COMMON_AUTH_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace chainscale {

class ApiKeys {
 public:
  ApiKeys() = default;
  explicit ApiKeys(std::vector<std::string> keys) : keys_(std::move(keys)) {}

  // Keys from `file_path` (one per line; blank lines and lines starting with '#' are
  // skipped) and from `env_value` (comma-separated). Either may be empty. NOT_FOUND when
  // the file cannot be read, INVALID_ARGUMENT for a key with whitespace inside.
  static absl::StatusOr<ApiKeys> Load(absl::string_view file_path, absl::string_view env_value);

  bool empty() const { return keys_.empty(); }
  size_t size() const { return keys_.size(); }
  // The first key: what an agent presents to its peers when it forwards reports (agents of
  // one pool accept the same keys). Empty when there is none.
  std::string first() const { return keys_.empty() ? std::string() : keys_.front(); }

  // The index of the key that `authorization` carries after the scheme "Api-Key" or
  // "Bearer" (see the file comment for spelling), the same for every spelling of one key;
  // UNAUTHENTICATED otherwise, saying what was wrong but never echoing the key. Takes the
  // same time whichever key matches or how much of it.
  absl::StatusOr<size_t> Identify(absl::string_view authorization) const;
  absl::Status Check(absl::string_view authorization) const {
    return Identify(authorization).status();
  }

 private:
  std::vector<std::string> keys_;
};

// Compares `candidate` with `secret` in time that depends only on the secret's length.
bool ConstantTimeEquals(absl::string_view secret, absl::string_view candidate);

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_AUTH_H_
