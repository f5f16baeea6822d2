#include "common/error_text.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/field_violations.h"

namespace chainscale {
namespace {

constexpr size_t kMaxQuotedNameBytes = 64;
constexpr size_t kMaxViolationFieldBytes = 128;
constexpr size_t kMaxViolationDescriptionBytes = 256;
// With a 1 KiB message this keeps the serialized google.rpc.Status under 3.2 KiB (4.3 KiB
// in base64), so grpc-message (at most 3 KiB percent-encoded) and
// grpc-status-details-bin fit 8 KiB together.
constexpr size_t kMaxViolationBytes = 2048;

bool IsContinuationByte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

}  // namespace

std::string TruncateUtf8(absl::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  static constexpr absl::string_view kMarker = "...";
  if (max_bytes < kMarker.size()) return std::string(kMarker.substr(0, max_bytes));
  size_t end = max_bytes - kMarker.size();
  // Back up to the first byte of the sequence the cut falls in.
  while (end > 0 && IsContinuationByte(text[end])) --end;
  return absl::StrCat(text.substr(0, end), kMarker);
}

std::string QuotedName(absl::string_view name) {
  if (name.size() <= kMaxQuotedNameBytes) return absl::StrCat("\"", name, "\"");
  return absl::StrCat("\"", TruncateUtf8(name, kMaxQuotedNameBytes), "\" (", name.size(),
                      " bytes)");
}

std::string QuotedList(const std::vector<std::string>& names, size_t max_names) {
  std::vector<std::string> quoted;
  for (size_t i = 0; i < names.size() && i < max_names; ++i) {
    quoted.push_back(QuotedName(names[i]));
  }
  std::string out = absl::StrJoin(quoted, ", ");
  if (names.size() > max_names) absl::StrAppend(&out, " and ", names.size() - max_names, " more");
  return out;
}

absl::Status BoundedStatus(const absl::Status& status) {
  if (status.ok()) return status;
  const std::vector<FieldViolation> violations = FieldViolationsOf(status);
  if (violations.empty()) {
    if (status.message().size() <= kMaxErrorMessageBytes &&
        !status.GetPayload(kBadRequestTypeUrl).has_value()) {
      return status;
    }
    return absl::Status(status.code(), TruncateUtf8(status.message(), kMaxErrorMessageBytes));
  }
  std::vector<FieldViolation> kept;
  size_t bytes = 0;
  bool cut = false;
  for (const FieldViolation& v : violations) {
    FieldViolation bounded{TruncateUtf8(v.field, kMaxViolationFieldBytes),
                           TruncateUtf8(v.description, kMaxViolationDescriptionBytes)};
    const size_t size = bounded.field.size() + bounded.description.size();
    if (kept.size() == kMaxFieldViolations || bytes + size > kMaxViolationBytes) break;
    cut |= bounded.field.size() != v.field.size() ||
           bounded.description.size() != v.description.size();
    bytes += size;
    kept.push_back(std::move(bounded));
  }
  if (kept.size() == violations.size() && !cut &&
      status.message().size() <= kMaxErrorMessageBytes) {
    return status;
  }
  std::vector<std::string> parts;
  for (const FieldViolation& v : kept) parts.push_back(absl::StrCat(v.field, ": ", v.description));
  std::string message = absl::StrJoin(parts, "; ");
  if (kept.size() < violations.size()) {
    absl::StrAppend(&message, "; and ", violations.size() - kept.size(), " more");
  }
  absl::Status out(status.code(), TruncateUtf8(message, kMaxErrorMessageBytes));
  out.SetPayload(kBadRequestTypeUrl,
                 *InvalidArgumentWithViolations(kept).GetPayload(kBadRequestTypeUrl));
  return out;
}

}  // namespace chainscale
