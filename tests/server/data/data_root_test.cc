// ResolveUnderRoot: relative paths resolve inside the root; absolute paths, "..", and symlinks
// leading outside are refused naming the path and the root; missing paths are NotFound.
#include "server/data/data_root.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/server/data/data_test_util.h"

namespace selene::data {
namespace {

namespace fs = std::filesystem;
using ::selene::data::testing::TempDir;
using ::testing::AllOf;
using ::testing::HasSubstr;

class DataRootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_ / "root";
    fs::create_directories(root_ + "/sets/moon");
    fs::create_directories(dir_ / "outside/secret");
  }
  TempDir dir_;
  std::string root_;
};

TEST_F(DataRootTest, ResolvesRelativePathsInside) {
  auto resolved = ResolveUnderRoot(root_, "sets/moon");
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(*resolved, root_ + "/sets/moon");
  auto same = ResolveUnderRoot(root_ + "/", "./sets//moon/");
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(*same, root_ + "/sets/moon");
  auto itself = ResolveUnderRoot(root_, "");
  ASSERT_TRUE(itself.ok()) << itself.status();
  EXPECT_EQ(*itself, root_);
}

TEST_F(DataRootTest, RefusesDotDotNamingPathAndRoot) {
  for (const std::string path : {"../x", "sets/../../outside", "sets/moon/../../.."}) {
    auto resolved = ResolveUnderRoot(root_, path);
    ASSERT_FALSE(resolved.ok()) << path;
    EXPECT_EQ(resolved.status().code(), StatusCode::kInvalidArgument) << path;
    EXPECT_THAT(resolved.status().message(), AllOf(HasSubstr(path), HasSubstr(root_)));
  }
}

TEST_F(DataRootTest, RefusesAbsolutePaths) {
  const std::string absolute = dir_ / "outside";
  for (const std::string& path : {absolute, std::string("/abs"), root_ + "/sets"}) {
    auto resolved = ResolveUnderRoot(root_, path);
    ASSERT_FALSE(resolved.ok()) << path;
    EXPECT_EQ(resolved.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(resolved.status().message(), AllOf(HasSubstr(path), HasSubstr(root_)));
  }
}

TEST_F(DataRootTest, RefusesSymlinksLeadingOutside) {
  fs::create_directory_symlink(dir_ / "outside", root_ + "/escape");
  fs::create_directory_symlink(dir_ / "outside/secret", root_ + "/sets/deep");
  for (const std::string path : {"escape", "escape/secret", "sets/deep"}) {
    auto resolved = ResolveUnderRoot(root_, path);
    ASSERT_FALSE(resolved.ok()) << path;
    EXPECT_EQ(resolved.status().code(), StatusCode::kInvalidArgument) << path;
    EXPECT_THAT(resolved.status().message(),
                AllOf(HasSubstr(path), HasSubstr(root_), HasSubstr("outside the data root")));
  }
}

TEST_F(DataRootTest, AcceptsSymlinksStayingInside) {
  fs::create_directory_symlink(root_ + "/sets/moon", root_ + "/moon-latest");
  auto resolved = ResolveUnderRoot(root_, "moon-latest");
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(*resolved, root_ + "/sets/moon");
}

TEST_F(DataRootTest, MissingFolderIsNotFoundNamingIt) {
  auto resolved = ResolveUnderRoot(root_, "sets/camvid");
  ASSERT_FALSE(resolved.ok());
  EXPECT_EQ(resolved.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(resolved.status().message(), HasSubstr("sets/camvid"));
  auto dangling = ResolveUnderRoot(root_ + "/nope", "sets");
  ASSERT_FALSE(dangling.ok());
  EXPECT_EQ(dangling.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(dangling.status().message(), HasSubstr(root_ + "/nope"));
}

TEST(IsWithinTest, ComparesWholeComponents) {
  EXPECT_TRUE(IsWithin("/a/b", "/a/b"));
  EXPECT_TRUE(IsWithin("/a/b", "/a/b/c"));
  EXPECT_FALSE(IsWithin("/a/b", "/a/bc"));
  EXPECT_FALSE(IsWithin("/a/b", "/a"));
  EXPECT_TRUE(IsWithin("/", "/a"));
}

}  // namespace
}  // namespace selene::data
