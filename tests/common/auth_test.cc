// API keys: loading from a file and the environment, and checking authorization values.
#include "common/auth.h"

#include <cstdio>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chainscale {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(ApiKeysTest, LoadsKeysFromFileAndEnvironment) {
  const std::string path = ::testing::TempDir() + "/keys_" + std::to_string(::getpid());
  {
    std::ofstream out(path);
    out << "# demo keys\n\n  file-key-1  \nfile-key-2\n";
  }
  absl::StatusOr<ApiKeys> keys = ApiKeys::Load(path, "env-key-1, env-key-2,");
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(keys->size(), 4u);
  EXPECT_TRUE(keys->Check("Api-Key file-key-1").ok());
  EXPECT_TRUE(keys->Check("Bearer env-key-2").ok());
  EXPECT_FALSE(keys->Check("Api-Key # demo keys").ok());
  std::remove(path.c_str());
}

TEST(ApiKeysTest, LoadErrors) {
  EXPECT_EQ(ApiKeys::Load("/nonexistent/keys.txt", "").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(ApiKeys::Load("", "a b").status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<ApiKeys> none = ApiKeys::Load("", "");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(ApiKeysTest, CheckAcceptsBothSchemesAndNeverEchoesTheKey) {
  const ApiKeys keys({"s3cret-key"});
  EXPECT_TRUE(keys.Check("Api-Key s3cret-key").ok());
  EXPECT_TRUE(keys.Check("Bearer s3cret-key").ok());
  EXPECT_TRUE(keys.Check("bearer s3cret-key").ok());
  for (const char* bad : {"", "s3cret-key", "Basic s3cret-key", "Api-Key s3cret-ke",
                          "Api-Key s3cret-key2", "Bearer ", "Api-Key S3CRET-KEY"}) {
    absl::Status s = keys.Check(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated) << bad;
    EXPECT_THAT(s.message(), Not(HasSubstr("s3cret"))) << bad;
  }
}

// auth.h promises: the scheme is matched case-insensitively (RFC 9110 §11.1), any run of
// spaces or tabs separates it from the key, and whitespace around the value is ignored.
TEST(ApiKeysTest, SchemesAreCaseInsensitiveAndSpacingIsFree) {
  const ApiKeys keys({"k1", "k2"});
  for (const char* ok : {"API-KEY k1", "BEARER k1", "bEaReR k1", "api-key k1", "Bearer    k1",
                         "Bearer\tk1", " Api-Key k1 ", "Api-Key \t k2\t"}) {
    EXPECT_TRUE(keys.Check(ok).ok()) << ok;
  }
  for (const char* bad : {"Api-Keyk1", "Bearerk1", "Api_Key k1", "Api-Key k1 k1", "Api-Key K1",
                          "Api-Key", "Bearer\nk1", "Basic k1", "Token k1"}) {
    EXPECT_EQ(keys.Check(bad).code(), absl::StatusCode::kUnauthenticated) << bad;
  }
}

TEST(ConstantTimeEqualsTest, ComparesWholeStrings) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "ab"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcabc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", ""));
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
}

}  // namespace
}  // namespace chainscale
