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

TEST(NamesTest, DisplayNames) {
  EXPECT_FALSE(DisplayNameProblem("").has_value());
  EXPECT_FALSE(DisplayNameProblem("Mon modèle — 日本語 (v2) 🚀").has_value());
  EXPECT_EQ(DisplayNameProblem(std::string("a\0b", 3)),
            "must be printable text; it has U+0000 at byte 1 (control characters, escape "
            "sequences and bidirectional marks are refused)");
  EXPECT_EQ(DisplayNameProblem("\x1b[31m").value_or("").substr(0, 37), "must be printable text; it has U+001B");
  EXPECT_EQ(DisplayNameProblem("x\xE2\x80\xAE" "y").value_or("").substr(0, 37),
            "must be printable text; it has U+202E");
  EXPECT_EQ(DisplayNameProblem("x\xC2\x85").value_or("").substr(0, 37), "must be printable text; it has U+0085");
  EXPECT_EQ(DisplayNameProblem("ok\xFF"), "must be valid UTF-8; byte 2 is not");
  EXPECT_EQ(DisplayNameProblem("\xC0\x80"), "must be valid UTF-8; byte 0 is not");  // overlong NUL
  EXPECT_EQ(DisplayNameProblem("\xED\xA0\x80"), "must be valid UTF-8; byte 0 is not");  // surrogate
  EXPECT_EQ(DisplayNameProblem("\xE2\x80"), "must be valid UTF-8; byte 0 is not");  // truncated
}

}  // namespace
}  // namespace chainscale
