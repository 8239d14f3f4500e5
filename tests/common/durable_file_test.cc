// Tests common/durable_file.h: files replaced whole, and a full disk (a real tmpfs, where this
// process may mount one) reported by name with the old file intact and no temporary file left.
#include "common/durable_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/testing/files.h"
#include "tests/testing/small_disk.h"

namespace selene {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

class DurableFileTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = temp_.path(); }
  void TearDown() override { disk_.reset(); }

  // A tmpfs of `bytes` at dir_/disk, or a skip saying why there is none.
  bool MountSmallDisk(int64_t bytes) {
    StatusOr<std::unique_ptr<testing::SmallDisk>> disk =
        testing::SmallDisk::Mount((dir_ / "disk").string(), bytes);
    if (!disk.ok()) {
      reason_ = std::string(disk.status().message());
      return false;
    }
    disk_ = std::move(disk).value();
    return true;
  }

  static std::vector<std::string> Names(const fs::path& folder) {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(folder)) {
      names.push_back(entry.path().filename().string());
    }
    return names;
  }

  testing::TempDir temp_{"selene-durable-file-test"};
  fs::path dir_;
  std::unique_ptr<testing::SmallDisk> disk_;
  std::string reason_;
};

TEST_F(DurableFileTest, WritesAndReplacesAWholeFile) {
  const std::string path = (dir_ / "report.md").string();
  ASSERT_TRUE(WriteFileDurably(path, "first version").ok());
  EXPECT_EQ(testing::ReadFile(path), "first version");
  ASSERT_TRUE(WriteFileDurably(path, "v2").ok());
  EXPECT_EQ(testing::ReadFile(path), "v2");
  EXPECT_THAT(Names(dir_), UnorderedElementsAre("report.md"));
}

TEST_F(DurableFileTest, AMissingFolderIsAnErrorNamingTheFile) {
  const std::string path = (dir_ / "no" / "such" / "last.pt").string();
  const Status status = WriteFileDurably(path, "x");
  EXPECT_EQ(status.code(), StatusCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr(path));
  EXPECT_THAT(status.message(), HasSubstr("No such file or directory"));
}

TEST_F(DurableFileTest, AnUncommittedWriterLeavesNothingBehind) {
  const std::string path = (dir_ / "cache.bin").string();
  {
    StatusOr<DurableFileWriter> writer = DurableFileWriter::Open(path);
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_TRUE(writer->Append("half of a file").ok());
    EXPECT_TRUE(fs::exists(writer->temporary_path()));
    // A cancel or an error: the writer goes away without Commit.
  }
  EXPECT_TRUE(Names(dir_).empty());
}

TEST_F(DurableFileTest, AFullDiskNamesTheFileKeepsTheOldOneAndRemovesTheTemporaryFile) {
  if (!MountSmallDisk(int64_t{1} << 20)) GTEST_SKIP() << reason_;
  const std::string path = disk_->dir() + "/last.pt";
  ASSERT_TRUE(WriteFileDurably(path, "epoch 1").ok());
  ASSERT_TRUE(disk_->FillLeaving(64 << 10).ok());

  const std::string big(512 << 10, 'w');
  const Status status = WriteFileDurably(path, big);
  EXPECT_EQ(status.code(), StatusCode::kResourceExhausted) << status;
  EXPECT_EQ(status.message(), "disk full writing " + path);
  EXPECT_EQ(testing::ReadFile(path), "epoch 1");
  EXPECT_THAT(Names(disk_->dir()), UnorderedElementsAre("last.pt", "filler"));

  // Once there is room again, the same write succeeds.
  disk_->Free();
  EXPECT_TRUE(WriteFileDurably(path, big).ok());
  EXPECT_EQ(testing::ReadFile(path).size(), big.size());
}

TEST_F(DurableFileTest, ErrnoBecomesAStatusNamingTheCause) {
  EXPECT_EQ(FileError(ENOSPC, "writing", "a/b.pt").message(), "disk full writing a/b.pt");
  EXPECT_EQ(FileError(EDQUOT, "writing", "a/b.pt").code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(FileError(EIO, "writing", "a/b.pt").message(), "I/O error writing a/b.pt");
  EXPECT_THAT(FileError(EACCES, "writing", "a/b.pt").message(), HasSubstr("Permission denied"));
}

}  // namespace
}  // namespace selene
