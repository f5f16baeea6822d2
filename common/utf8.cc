#include "common/utf8.h"

namespace chainscale {

std::optional<uint32_t> DecodeUtf8(absl::string_view text, size_t* i) {
  const auto lead = static_cast<unsigned char>(text[*i]);
  const size_t length = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3
                                          : (lead >> 3) == 0x1E ? 4 : 0;
  if (length == 0 || *i + length > text.size()) return std::nullopt;
  uint32_t cp = length == 1 ? lead : lead & (0xFF >> (length + 1));
  for (size_t k = 1; k < length; ++k) {
    const auto c = static_cast<unsigned char>(text[*i + k]);
    if ((c >> 6) != 0x2) return std::nullopt;
    cp = (cp << 6) | (c & 0x3F);
  }
  static constexpr uint32_t kMinimum[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMinimum[length] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
    return std::nullopt;
  }
  *i += length;
  return cp;
}

std::string ValidUtf8(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const size_t start = i;
    if (DecodeUtf8(text, &i).has_value()) {
      out.append(text.data() + start, i - start);
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

}  // namespace chainscale
