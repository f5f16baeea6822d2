// Selector matching and the --selector syntax.
#include "common/selector.h"

#include "gtest/gtest.h"

namespace chainscale {
namespace {

TEST(SelectorTest, EmptySelectsEverything) {
  EXPECT_TRUE(SelectorMatches(v1::Selector(), "any", "thing"));
}

TEST(SelectorTest, ChainOrChainEnvironment) {
  const v1::Selector selector = ParseSelector("alpha, beta/production").value();
  ASSERT_EQ(selector.chain_environments_size(), 2);
  EXPECT_TRUE(SelectorMatches(selector, "alpha", "staging"));
  EXPECT_TRUE(SelectorMatches(selector, "beta", "production"));
  EXPECT_FALSE(SelectorMatches(selector, "beta", "development"));
  EXPECT_FALSE(SelectorMatches(selector, "gamma", "production"));
  v1::ChainletKey key;
  key.set_chain_id("beta");
  key.set_env_name("production");
  EXPECT_TRUE(SelectorMatches(selector, key));
}

TEST(SelectorTest, BadEntriesAreRejected) {
  for (const char* text : {"Alpha", "a/b/c", "a/Prod", "/production"}) {
    EXPECT_EQ(ParseSelector(text).status().code(), absl::StatusCode::kInvalidArgument) << text;
  }
  EXPECT_EQ(ParseSelector("").value().chain_environments_size(), 0);
}

}  // namespace
}  // namespace chainscale
