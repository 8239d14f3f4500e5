// Tests server/jobs/device_pool.h: slots per device, spreading over devices, refusals, and the
// default device list (every CUDA device torch sees, else the CPU).
#include "server/jobs/device_pool.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <optional>
#include <string>
#include <vector>

namespace selene::jobs {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(DevicePoolTest, SpreadsJobsOverDevicesAndCountsSlots) {
  StatusOr<std::unique_ptr<DevicePool>> pool = DevicePool::Create({"cpu"}, 2);
  ASSERT_TRUE(pool.ok()) << pool.status();
  DevicePool& p = **pool;
  EXPECT_EQ(p.capacity(), 2);
  EXPECT_EQ(p.Acquire(), "cpu");
  EXPECT_EQ(p.Acquire(), "cpu");
  EXPECT_EQ(p.Acquire(), std::nullopt);
  EXPECT_EQ(p.in_use(), 2);
  EXPECT_TRUE(p.Release("cpu").ok());
  EXPECT_EQ(p.Acquire(), "cpu");
  EXPECT_TRUE(p.Release("cpu").ok());
  EXPECT_TRUE(p.Release("cpu").ok());
  EXPECT_EQ(p.Release("cpu").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(p.Release("cuda:0").code(), absl::StatusCode::kFailedPrecondition);
}

TEST(DevicePoolTest, RefusesBadDevicesAndDefaultsToWhatTorchSees) {
  EXPECT_EQ(DevicePool::Create({"cpu", "cpu:0"}).status().code(),
            absl::StatusCode::kInvalidArgument);  // the same device twice
  EXPECT_THAT(DevicePool::Create({"gpu7"}).status().message(), HasSubstr("gpu7"));
  EXPECT_EQ(DevicePool::Create({"cpu"}, 0).status().code(), absl::StatusCode::kInvalidArgument);
  const std::vector<std::string> defaults = DefaultDevices();
  if (torch::cuda::is_available()) {
    EXPECT_EQ(defaults.size(), torch::cuda::device_count());
    EXPECT_EQ(defaults.front(), "cuda:0");
  } else {
    EXPECT_THAT(defaults, ElementsAre("cpu"));
    EXPECT_EQ(DevicePool::Create({"cuda:0"}).status().code(),
              absl::StatusCode::kFailedPrecondition);
  }
  StatusOr<std::unique_ptr<DevicePool>> pool = DevicePool::Create({});
  ASSERT_TRUE(pool.ok()) << pool.status();
  EXPECT_EQ((*pool)->devices(), defaults);
}

}  // namespace
}  // namespace selene::jobs
