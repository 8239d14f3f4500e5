// Tests server/api/artifact_index.h on a hand-made job folder: what counts as an artifact, the
// SHA-256 of each (and a fresh one once a file is replaced), names that are refused, and reads
// of an open artifact that survive the file being replaced.
#include "server/api/artifact_index.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/run_folder.h"
#include "common/sha256.h"
#include "server/jobs/job_runner.h"
#include "tests/server/api/api_test_util.h"
#include "tests/testing/files.h"

namespace selene::api {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

void Write(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

class ArtifactIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir("selene-artifact-index");
    folder_ = RunFolder::OfJob(dir_, "job-1").path();
    fs::create_directories(folder_ / "plots");
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string dir_;
  fs::path folder_;
};

TEST_F(ArtifactIndexTest, Sha256OfKnownInputs) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_F(ArtifactIndexTest, ListsRegularFilesWithSizeAndDigest) {
  Write(folder_ / "best.pt", "abc");
  Write(folder_ / "history.csv", "epoch,loss\n");
  Write(folder_ / "empty.txt", "");
  Write(folder_ / "last.pt.tmp", "half written");
  Write(folder_ / ".hidden", "x");
  Write(folder_ / "plots" / "loss.png", "png");
  fs::create_symlink("/etc/hostname", folder_ / "link");
  ArtifactIndex index(dir_);
  StatusOr<std::vector<v1::Artifact>> listed = index.List("job-1");
  ASSERT_TRUE(listed.ok()) << listed.status();
  std::vector<std::string> names;
  for (const v1::Artifact& a : *listed) names.push_back(a.name());
  EXPECT_THAT(names, ElementsAre("best.pt", "empty.txt", "history.csv"));
  EXPECT_EQ((*listed)[0].size_bytes(), 3);
  EXPECT_EQ((*listed)[0].sha256(), Sha256Hex("abc"));
  EXPECT_EQ((*listed)[1].sha256(), Sha256Hex(""));

  // A job that has not started has no folder yet: no artifacts, no error.
  StatusOr<std::vector<v1::Artifact>> none = index.List("job-2");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_F(ArtifactIndexTest, ReplacedFileGetsAFreshDigest) {
  ArtifactIndex index(dir_);
  Write(folder_ / "last.pt", "epoch 1");
  EXPECT_EQ((*index.List("job-1"))[0].sha256(), Sha256Hex("epoch 1"));
  // Replaced the way checkpoints are: a temporary file renamed over it (same size too).
  Write(folder_ / "last.pt.tmp", "epoch 2");
  fs::rename(folder_ / "last.pt.tmp", folder_ / "last.pt");
  EXPECT_EQ((*index.List("job-1"))[0].sha256(), Sha256Hex("epoch 2"));
}

TEST_F(ArtifactIndexTest, OpenRefusesNamesOutsideTheFolder) {
  Write(folder_ / "best.pt", "abc");
  ArtifactIndex index(dir_);
  for (const char* name : {"../job-2/best.pt", "plots/loss.png", "..", "/etc/passwd"}) {
    const Status status = index.Open("job-1", name).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(status.message(), HasSubstr(name));
  }
  EXPECT_EQ(index.Open("job-1", "").status().code(), absl::StatusCode::kInvalidArgument);
  for (const char* name : {"missing.pt", "plots", "link", "last.pt.tmp", ".hidden"}) {
    const Status status = index.Open("job-1", name).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << name;
    EXPECT_THAT(status.message(), HasSubstr("job job-1 has no artifact"));
  }
}

TEST_F(ArtifactIndexTest, OpenArtifactReadsWhatWasOpenedEvenAfterReplacement) {
  std::string bytes(3000, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7);
  Write(folder_ / "best.pt", bytes);
  ArtifactIndex index(dir_);
  StatusOr<std::unique_ptr<OpenArtifact>> file = index.Open("job-1", "best.pt");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->size(), 3000);
  EXPECT_EQ((*file)->sha256(), Sha256Hex(bytes));
  Write(folder_ / "other", "new content");
  fs::rename(folder_ / "other", folder_ / "best.pt");
  EXPECT_EQ(*(*file)->Read(0, 1000), bytes.substr(0, 1000));
  EXPECT_EQ(*(*file)->Read(2500, 1000), bytes.substr(2500));
  EXPECT_EQ(*(*file)->Read(3000, 1000), "");
}

}  // namespace
}  // namespace selene::api
