#include "server/metrics/process_metrics.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/metrics/device_memory.h"

namespace selene::metrics {
namespace {

std::map<std::string, double> Values(const Registry& registry) {
  std::map<std::string, double> values;
  for (const FamilySnapshot& family : registry.Collect()) {
    if (!family.samples.empty()) values[family.name] = family.samples[0].value;
  }
  return values;
}

TEST(ProcessMetricsTest, ReportThisProcess) {
  Registry registry;
  AddProcessMetrics(&registry);
  std::map<std::string, double> before = Values(registry);

  // Burn some CPU and open a descriptor: both must show at the next scrape.
  volatile double sink = 0;
  const clock_t start = clock();
  while (clock() - start < CLOCKS_PER_SEC / 5) sink = sink + 1;
  const int fd = open("/dev/null", O_RDONLY);
  std::map<std::string, double> after = Values(registry);
  close(fd);

  EXPECT_GE(after["process_cpu_seconds_total"] - before["process_cpu_seconds_total"], 0.15);
  EXPECT_EQ(after["process_open_fds"], before["process_open_fds"] + 1);
  EXPECT_GT(after["process_resident_memory_bytes"], 1 << 20);
  EXPECT_GE(after["process_virtual_memory_bytes"], after["process_resident_memory_bytes"]);
  EXPECT_GE(after["process_max_fds"], after["process_open_fds"]);
  EXPECT_GE(after["process_threads"], 1);
  const double now = static_cast<double>(time(nullptr));
  EXPECT_LE(after["process_start_time_seconds"], now + 1);
  EXPECT_GT(after["process_start_time_seconds"], now - 3600);  // this test started just now
}

TEST(DeviceMemoryMetricsTest, AddedOnlyWhereNvmlSeesADevice) {
  Registry registry;
  const bool added = AddDeviceMemoryMetrics(&registry);
  const std::vector<FamilySnapshot> families = registry.Collect();
  if (!added) {
    EXPECT_TRUE(families.empty());
    GTEST_SKIP() << "no NVML or no CUDA device here: nothing to report";
  }
  ASSERT_EQ(families.size(), 2u);
  ASSERT_FALSE(families[0].samples.empty());
  EXPECT_EQ(families[0].samples[0].label_values[0], "cuda:0");
  EXPECT_LE(families[0].samples[0].value, families[1].samples[0].value);
}

}  // namespace
}  // namespace selene::metrics
