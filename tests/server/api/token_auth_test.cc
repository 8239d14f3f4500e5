// Tests server/api/token_auth.h: token files (comments, blank lines, empty and unreadable files)
// and the header check (missing, wrong scheme, wrong token, each listed token, case of "Bearer").
// The check inside real calls is in selene_server_test.
#include "server/api/token_auth.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/server/api/api_test_util.h"
#include "tests/testing/files.h"

namespace selene::api {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string WriteFile(const std::string& dir, const std::string& name, const std::string& text) {
  const std::string path = (fs::path(dir) / name).string();
  std::ofstream(path) << text;
  return path;
}

Status Check(const TokenAuth& auth, const std::string& header) { return auth.CheckHeader(&header); }

TEST(TokenAuthTest, LoadsTokensSkippingCommentsAndBlankLines) {
  const std::string dir = testing::MakeTempDir("selene-token-auth");
  const std::string path =
      WriteFile(dir, "tokens", "# operators\n\n  alpha-token  \n#beta\nsecond\r\n\n");
  StatusOr<std::unique_ptr<TokenAuth>> auth = TokenAuth::LoadFile(path);
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_EQ((*auth)->token_count(), 2);
  EXPECT_TRUE(Check(**auth, "Bearer alpha-token").ok());
  EXPECT_TRUE(Check(**auth, "Bearer second").ok());
  EXPECT_TRUE(Check(**auth, "bearer second").ok());  // the scheme is case-insensitive
  EXPECT_FALSE(Check(**auth, "Bearer #beta").ok());
  EXPECT_FALSE(Check(**auth, "Bearer beta").ok());
  fs::remove_all(dir);
}

TEST(TokenAuthTest, EmptyOrUnreadableFileIsAnErrorNamingIt) {
  const std::string dir = testing::MakeTempDir("selene-token-auth");
  const std::string empty = WriteFile(dir, "empty", "# nothing but comments\n\n");
  StatusOr<std::unique_ptr<TokenAuth>> auth = TokenAuth::LoadFile(empty);
  EXPECT_EQ(auth.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(auth.status().message(), HasSubstr(empty));
  EXPECT_THAT(auth.status().message(), HasSubstr("no token"));

  const std::string missing = (fs::path(dir) / "missing").string();
  auth = TokenAuth::LoadFile(missing);
  EXPECT_EQ(auth.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(auth.status().message(), HasSubstr(missing));
  fs::remove_all(dir);
}

TEST(TokenAuthTest, MissingAndWrongTokensAreUnauthenticated) {
  StatusOr<std::unique_ptr<TokenAuth>> auth = TokenAuth::FromTokens({"s3cret"});
  ASSERT_TRUE(auth.ok());
  const Status missing = (*auth)->CheckHeader(nullptr);
  EXPECT_EQ(missing.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(missing.message(), "missing bearer token (authorization: Bearer ...)");
  EXPECT_EQ(Check(**auth, "Basic czNjcmV0").message(),
            "missing bearer token (authorization: Bearer ...)");
  for (const char* wrong :
       {"Bearer s3cre", "Bearer s3cret2", "Bearer S3CRET", "Bearer ", "Bearer x"}) {
    const Status status = Check(**auth, wrong);
    EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << wrong;
    EXPECT_EQ(status.message(), "invalid bearer token") << wrong;
  }
  EXPECT_TRUE(Check(**auth, "Bearer s3cret").ok());
  EXPECT_FALSE(TokenAuth::FromTokens({}).ok());
  EXPECT_FALSE(TokenAuth::FromTokens({""}).ok());
}

}  // namespace
}  // namespace selene::api
