#include "tools/replica/completions.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/error_text.h"
#include "common/json_print.h"

namespace chainscale {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

// The field `name`, or null when it is absent or JSON null ("not passed").
const Value* Field(const Struct& body, const std::string& name) {
  auto it = body.fields().find(name);
  if (it == body.fields().end() || it->second.has_null_value()) return nullptr;
  return &it->second;
}

absl::Status WrongKind(absl::string_view field, absl::string_view expected, const Value& value) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, " must be ", expected, ", not ", JsonKindName(value)));
}

}  // namespace

int64_t EstimateTokens(absl::string_view text) {
  return static_cast<int64_t>((text.size() + 3) / 4);
}

absl::StatusOr<CompletionRequest> ParseCompletionRequest(absl::string_view body,
                                                         int64_t max_model_len) {
  // Read as any JSON value first, to say what was sent when it is not an object.
  Value document;
  const auto parsed = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(body.data(), body.size()), &document);
  if (!parsed.ok()) {
    // protobuf's message goes on with a line that points at the error: its first line
    // says what is wrong.
    const std::string message = parsed.message().as_string();
    return absl::InvalidArgumentError(TruncateUtf8(
        absl::StrCat("body must be a JSON object; it is not valid JSON: ",
                     absl::string_view(message).substr(0, message.find('\n'))),
        512));
  }
  if (!document.has_struct_value()) return WrongKind("body", "a JSON object", document);
  const Struct& root = document.struct_value();
  CompletionRequest request;
  if (const Value* model = Field(root, "model")) {
    if (!model->has_string_value()) return WrongKind("model", "a JSON string", *model);
    request.model = model->string_value();
  }
  if (const Value* stream = Field(root, "stream")) {
    if (!stream->has_bool_value()) return WrongKind("stream", "true or false", *stream);
    if (stream->bool_value()) {
      return absl::InvalidArgumentError(
          "stream: streaming answers are not supported by this stand-in; send false or "
          "leave it out");
    }
  }
  const Value* prompt = Field(root, "prompt");
  if (prompt == nullptr) return absl::InvalidArgumentError("prompt is required");
  if (!prompt->has_string_value()) {
    return WrongKind("prompt",
                     "a JSON string (lists of prompts or of token ids are not supported)",
                     *prompt);
  }
  request.tokens.prompt_tokens = EstimateTokens(prompt->string_value());
  if (request.tokens.prompt_tokens >= max_model_len) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt has about ", request.tokens.prompt_tokens,
        " tokens, which leaves no room in the model's context of ", max_model_len, " tokens"));
  }
  const Value* max_tokens = Field(root, "max_tokens");
  if (max_tokens == nullptr) return absl::InvalidArgumentError("max_tokens is required");
  if (!max_tokens->has_number_value()) {
    return WrongKind("max_tokens", "a JSON number", *max_tokens);
  }
  const double n = max_tokens->number_value();
  if (n != std::floor(n)) {
    return absl::InvalidArgumentError(absl::StrCat("max_tokens must be an integer, not ", n));
  }
  if (n < 1) return absl::InvalidArgumentError(absl::StrCat("max_tokens must be at least 1, not ", n));
  const int64_t room = max_model_len - request.tokens.prompt_tokens;
  if (n > static_cast<double>(room)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_tokens ", n, " and the prompt's ", request.tokens.prompt_tokens,
        " tokens are more than the model's context of ", max_model_len, " tokens"));
  }
  request.tokens.completion_tokens = static_cast<int64_t>(n);
  return request;
}

absl::StatusOr<std::string> CompletionResponseJson(absl::string_view id, absl::Time created,
                                                   absl::string_view model,
                                                   const CompletionRequest& request) {
  const RequestTokens& t = request.tokens;
  std::string text;
  text.reserve(static_cast<size_t>(t.completion_tokens) * 4);
  for (int64_t i = 0; i < t.completion_tokens; ++i) text += " tok";

  Struct root;
  auto& fields = *root.mutable_fields();
  fields["id"].set_string_value(std::string(id));
  fields["object"].set_string_value("text_completion");
  fields["created"].set_number_value(static_cast<double>(absl::ToUnixSeconds(created)));
  fields["model"].set_string_value(std::string(model));
  Struct* choice = fields["choices"].mutable_list_value()->add_values()->mutable_struct_value();
  auto& c = *choice->mutable_fields();
  c["index"].set_number_value(0);
  c["text"].set_string_value(std::move(text));
  c["logprobs"].set_null_value(google::protobuf::NULL_VALUE);
  c["finish_reason"].set_string_value("length");
  auto& usage = *fields["usage"].mutable_struct_value()->mutable_fields();
  usage["prompt_tokens"].set_number_value(static_cast<double>(t.prompt_tokens));
  usage["completion_tokens"].set_number_value(static_cast<double>(t.completion_tokens));
  usage["total_tokens"].set_number_value(static_cast<double>(t.prompt_tokens + t.completion_tokens));
  std::string out;
  if (absl::Status s = PrintJson(root, google::protobuf::util::JsonPrintOptions(), &out);
      !s.ok()) {
    return s;
  }
  out.push_back('\n');
  return out;
}

}  // namespace chainscale
