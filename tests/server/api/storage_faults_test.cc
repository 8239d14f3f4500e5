// Full disks, on a real small file system (a tmpfs; the tests skip with the reason where this
// process may not mount one): a job whose checkpoint cannot be written fails with the file named
// while the server keeps serving, nothing half-written stays behind, and a server restarted on a
// full disk comes up read-only (queries and inference, no training) instead of refusing to start.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "server/api/selene_server.h"
#include "server/jobs/job_runner.h"
#include "tests/server/api/api_test_util.h"
#include "tests/server/serving/serving_test_models.h"
#include "tests/testing/files.h"
#include "tests/testing/small_disk.h"

namespace selene::api {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::TestClient;

class StorageFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir("selene-storage-faults");
    StatusOr<std::unique_ptr<selene::testing::SmallDisk>> disk =
        selene::testing::SmallDisk::Mount((fs::path(dir_) / "disk").string(), int64_t{96} << 20);
    if (!disk.ok()) GTEST_SKIP() << disk.status().message();
    disk_ = std::move(disk).value();
  }
  void TearDown() override {
    servers_.clear();
    disk_.reset();
    fs::remove_all(dir_);
  }

  SeleneServerOptions Options() const {
    SeleneServerOptions options = testing::TestServerOptions(dir_);
    options.state_dir = disk_->dir() + "/state";
    return options;
  }

  SeleneServer* Start() {
    StatusOr<std::unique_ptr<SeleneServer>> server = SeleneServer::Start(Options());
    EXPECT_TRUE(server.ok()) << server.status();
    if (!server.ok()) return nullptr;
    servers_.push_back(std::move(server).value());
    return servers_.back().get();
  }

  // Files under the state dir whose names say they are temporary.
  std::vector<std::string> TemporaryFiles() const {
    std::vector<std::string> found;
    for (const auto& entry : fs::recursive_directory_iterator(disk_->dir() + "/state")) {
      const std::string name = entry.path().filename().string();
      if (name.find(".tmp") != std::string::npos) found.push_back(entry.path().string());
    }
    return found;
  }

  std::string dir_;
  std::unique_ptr<selene::testing::SmallDisk> disk_;
  std::vector<std::unique_ptr<SeleneServer>> servers_;
};

// A U-Net whose checkpoints are megabytes, so the disk runs out at its first checkpoint rather
// than in the job store's few kilobytes per event.
v1::JobSpec WideMoonSpec() {
  v1::JobSpec spec = testing::MoonSpec("wide", 3);
  spec.mutable_model()->mutable_unet()->set_base_width(32);
  return spec;
}

TEST_F(StorageFaultsTest, AFullDiskFailsTheJobWithTheFileNamedAndTheServerKeepsServing) {
  SeleneServer* server = Start();
  ASSERT_NE(server, nullptr);
  TestClient client(server->address());
  ASSERT_TRUE(disk_->FillLeaving(int64_t{3} << 20).ok());

  const std::string id = client.SubmitOk(WideMoonSpec());
  const v1::Job failed = client.WaitTerminal(id);
  ASSERT_EQ(failed.state(), v1::JOB_STATE_FAILED) << failed.error();
  EXPECT_THAT(failed.error(), HasSubstr("disk full writing " + server->options().state_dir +
                                        "/jobs/" + id + "/best.pt"));
  // The store records an epoch only once its checkpoint is on disk.
  EXPECT_EQ(failed.current_epoch(), 0);
  EXPECT_THAT(TemporaryFiles(), ::testing::IsEmpty());

  EXPECT_EQ(client.Health(""), 1);
  disk_->Free();
  const std::string next = client.SubmitOk(testing::MoonSpec("after", 1));
  const v1::Job done = client.WaitTerminal(next);
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error();
}

TEST_F(StorageFaultsTest, ARestartOnAFullDiskServesReadOnlyAndSaysWhy) {
  std::string id;
  {
    SeleneServer* server = Start();
    ASSERT_NE(server, nullptr);
    TestClient client(server->address());
    id = client.SubmitOk(testing::MoonSpec("served", 1));
    ASSERT_EQ(client.WaitTerminal(id).state(), v1::JOB_STATE_SUCCEEDED);
    servers_.clear();
  }
  ASSERT_TRUE(disk_->FillLeaving(0).ok());

  SeleneServer* server = Start();
  ASSERT_NE(server, nullptr) << "a full disk must not stop the server from starting";
  EXPECT_THAT(server->read_only_reason(), HasSubstr("full"));
  TestClient client(server->address());

  v1::SubmitJobResponse submitted;
  const grpc::Status refused = client.Submit(testing::MoonSpec("refused", 1), &submitted);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(refused.error_message(), HasSubstr("read-only"));
  EXPECT_THAT(refused.error_message(), HasSubstr("full"));

  EXPECT_EQ(client.Get(id).state(), v1::JOB_STATE_SUCCEEDED);
  v1::SegmentRequest segment;
  segment.set_model(id);
  segment.set_image(serving::testing::EncodePng(serving::testing::TestImage(40, 30, 3, 5)));
  v1::SegmentResponse mask;
  const grpc::Status segmented = client.Segment(segment, &mask);
  EXPECT_TRUE(segmented.ok()) << segmented.error_message();
  EXPECT_FALSE(mask.mask_png().empty());
}

}  // namespace
}  // namespace selene::api
