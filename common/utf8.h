// UTF-8 for text that comes from requests: decoding one code point, and replacing what
// is not valid. Hand-written because none of the project's dependencies exposes a UTF-8
// decoder, and it is a dozen lines.
#ifndef CHAINSCALE_COMMON_UTF8_H_
#define CHAINSCALE_COMMON_UTF8_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace chainscale {

// The code point starting at `text[*i]` (`*i` < text.size()), advancing `*i` past it;
// nothing, with `*i` unchanged, for invalid UTF-8: a bad lead or continuation byte, a
// truncated sequence, an overlong form, a surrogate, or a value past U+10FFFF.
std::optional<uint32_t> DecodeUtf8(absl::string_view text, size_t* i);

// `text` with every byte that is not part of valid UTF-8 replaced by U+FFFD.
std::string ValidUtf8(absl::string_view text);

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_UTF8_H_
