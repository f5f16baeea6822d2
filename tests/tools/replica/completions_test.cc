// The completions shape chainscale-replica speaks: the token estimate, the request body
// (what is taken, and a 400 naming the field for what is not) and the answer body.
#include "tools/replica/completions.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chainscale {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(CompletionsTest, TokensAreEstimatedAsFourBytesEach) {
  EXPECT_EQ(EstimateTokens(""), 0);
  EXPECT_EQ(EstimateTokens("a"), 1);
  EXPECT_EQ(EstimateTokens("abcd"), 1);
  EXPECT_EQ(EstimateTokens("abcde"), 2);
  EXPECT_EQ(EstimateTokens(std::string(4000, 'x')), 1000);
}

TEST(CompletionsTest, ParsesPromptAndMaxTokens) {
  absl::StatusOr<CompletionRequest> r = ParseCompletionRequest(
      R"({"model": "m", "prompt": "The quick brown fox", "max_tokens": 16,
          "temperature": 0.7, "stream": false})",
      /*max_model_len=*/4096);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->tokens.prompt_tokens, 5);  // 19 bytes
  EXPECT_EQ(r->tokens.completion_tokens, 16);
  EXPECT_EQ(r->model, "m");
}

// Each bad body is a 400 whose message starts with the field it is about.
TEST(CompletionsTest, BadBodiesNameTheField) {
  struct Case {
    std::string body;
    std::string starts_with;
    std::string says;
  };
  const std::vector<Case> cases = {
      {R"({"max_tokens": 4})", "prompt", "required"},
      {R"({"prompt": ["a", "b"], "max_tokens": 4})", "prompt", "a JSON string"},
      {R"({"prompt": 7, "max_tokens": 4})", "prompt", "a JSON string"},
      {R"({"prompt": "hi"})", "max_tokens", "required"},
      {R"({"prompt": "hi", "max_tokens": "16"})", "max_tokens", "a JSON number"},
      {R"({"prompt": "hi", "max_tokens": 1.5})", "max_tokens", "an integer"},
      {R"({"prompt": "hi", "max_tokens": 0})", "max_tokens", "at least 1"},
      {R"({"prompt": "hi", "max_tokens": -3})", "max_tokens", "at least 1"},
      {R"({"prompt": "hi", "max_tokens": 1e300})", "max_tokens", "4096"},
      {R"({"prompt": "hi", "max_tokens": 4096})", "max_tokens", "4096"},
      {R"({"prompt": "hi", "max_tokens": null})", "max_tokens", "required"},
      {R"({"prompt": "hi", "max_tokens": 4, "stream": true})", "stream", "not supported"},
      {R"({"prompt": "hi", "max_tokens": 4, "stream": "yes"})", "stream", "true or false"},
      {R"({"prompt": "hi", "max_tokens": 4, "model": 3})", "model", "a JSON string"},
      {R"([1, 2])", "body", "JSON object"},
      {R"({"prompt": "hi", "max_tokens": 4)", "body", "JSON object"},
      {"", "body", "JSON object"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<CompletionRequest> r = ParseCompletionRequest(c.body, 4096);
    ASSERT_FALSE(r.ok()) << c.body;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.body;
    EXPECT_THAT(std::string(r.status().message()), StartsWith(c.starts_with)) << c.body;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(c.says)) << c.body;
  }
  // The context limit counts the prompt too: 2 + 4094 > 4096, 1 + 4095 = 4096 is fine.
  EXPECT_FALSE(ParseCompletionRequest(R"({"prompt": "abcdefgh", "max_tokens": 4095})", 4096).ok());
  EXPECT_TRUE(ParseCompletionRequest(R"({"prompt": "abcd", "max_tokens": 4095})", 4096).ok());
}

TEST(CompletionsTest, TheAnswerHasTheCompletionsShape) {
  CompletionRequest request;
  request.tokens = {12, 3};
  absl::StatusOr<std::string> printed = CompletionResponseJson(
      "cmpl-7", absl::FromUnixSeconds(1700000000), "stand-in", request);
  ASSERT_TRUE(printed.ok()) << printed.status();
  const std::string& body = *printed;
  EXPECT_EQ(body.back(), '\n');
  google::protobuf::Struct parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(body, &parsed).ok()) << body;
  const auto& f = parsed.fields();
  EXPECT_EQ(f.at("id").string_value(), "cmpl-7");
  EXPECT_EQ(f.at("object").string_value(), "text_completion");
  EXPECT_EQ(f.at("created").number_value(), 1700000000);
  EXPECT_EQ(f.at("model").string_value(), "stand-in");
  const auto& choice = f.at("choices").list_value().values(0).struct_value().fields();
  EXPECT_EQ(choice.at("index").number_value(), 0);
  EXPECT_EQ(choice.at("finish_reason").string_value(), "length");
  // The text is as long as the tokens it stands for, by the same estimate.
  EXPECT_EQ(EstimateTokens(choice.at("text").string_value()), 3);
  const auto& usage = f.at("usage").struct_value().fields();
  EXPECT_EQ(usage.at("prompt_tokens").number_value(), 12);
  EXPECT_EQ(usage.at("completion_tokens").number_value(), 3);
  EXPECT_EQ(usage.at("total_tokens").number_value(), 15);
}

}  // namespace
}  // namespace chainscale
