// Name syntax for chain ids, environments and chainlets.
#include "common/names.h"

#include "gtest/gtest.h"

namespace chainscale {
namespace {

TEST(NamesTest, ChainIds) {
  EXPECT_FALSE(ChainIdProblem("my-chain-1").has_value());
  EXPECT_FALSE(ChainIdProblem("1chain").has_value());
  EXPECT_FALSE(ChainIdProblem(std::string(63, 'a')).has_value());
  EXPECT_EQ(ChainIdProblem(""), "must not be empty");
  EXPECT_EQ(ChainIdProblem(std::string(64, 'a')), "must be at most 63 characters, got 64");
  EXPECT_EQ(ChainIdProblem("-chain"), "must start with a lowercase letter or digit; \"-chain\" "
                                      "does not");
  EXPECT_EQ(ChainIdProblem("My_Chain"),
            "may only contain lowercase letters, digits and '-'; \"My_Chain\" does not");
  EXPECT_TRUE(ChainIdProblem(std::string("a\0b", 3)).has_value());
}

TEST(NamesTest, Environments) {
  EXPECT_FALSE(EnvironmentNameProblem("production").has_value());
  EXPECT_FALSE(EnvironmentNameProblem("staging-2").has_value());
  EXPECT_TRUE(EnvironmentNameProblem("2nd").has_value());
  EXPECT_TRUE(EnvironmentNameProblem("Prod").has_value());
}

TEST(NamesTest, Chainlets) {
  EXPECT_FALSE(ChainletNameProblem("HelloWorld").has_value());
  EXPECT_FALSE(ChainletNameProblem("rand_int-2").has_value());
  EXPECT_TRUE(ChainletNameProblem("_hidden").has_value());
  EXPECT_TRUE(ChainletNameProblem("has space").has_value());
  EXPECT_TRUE(ChainletNameProblem("a/b").has_value());
}

}  // namespace
}  // namespace chainscale
