// The OpenAI / vLLM completions shape chainscale-replica speaks on POST /v1/completions:
// the request body it takes and the answer it gives. Only what sets a request's service
// time is read (the prompt and max_tokens); other fields (temperature, stop, ...) are
// accepted and ignored, as a stand-in cannot honour them anyway.
#ifndef CHAINSCALE_TOOLS_REPLICA_COMPLETIONS_H_
#define CHAINSCALE_TOOLS_REPLICA_COMPLETIONS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "tools/replica/scheduler.h"

namespace chainscale {

struct CompletionRequest {
  std::string model;  // as sent; empty when absent
  // prompt_tokens: estimated from the prompt; completion_tokens: max_tokens (the stand-in
  // always generates all of them, finish_reason "length").
  RequestTokens tokens;
};

// Tokens in `text`, estimated as ceil(bytes / 4): OpenAI's rule of thumb of about four
// characters per token of English text. The replica has no tokenizer, and the estimate
// only sets the service time and the usage numbers.
int64_t EstimateTokens(absl::string_view text);

// Reads a completions request body: a JSON object with "prompt" (a string; lists of
// prompts or of token ids are not supported) and "max_tokens" (an integer >= 1), whose
// sum with the prompt's tokens is at most `max_model_len`, as vLLM checks. "model" must be
// a string when present and "stream" false when present. INVALID_ARGUMENT otherwise, its
// message starting with the field it is about ("body" when the JSON itself is wrong).
absl::StatusOr<CompletionRequest> ParseCompletionRequest(absl::string_view body,
                                                         int64_t max_model_len);

// The answer, a JSON object and a newline: {"id", "object": "text_completion", "created"
// (Unix seconds), "model", "choices": [{"index": 0, "text", "logprobs": null,
// "finish_reason": "length"}], "usage": {"prompt_tokens", "completion_tokens",
// "total_tokens"}}. The text is " tok" once per completion token, so EstimateTokens
// gives the completion tokens back. INTERNAL when `id` or `model` is not UTF-8.
absl::StatusOr<std::string> CompletionResponseJson(absl::string_view id, absl::Time created,
                                                   absl::string_view model,
                                                   const CompletionRequest& request);

}  // namespace chainscale

#endif  // CHAINSCALE_TOOLS_REPLICA_COMPLETIONS_H_
