// Tests common/run_folder.h: where a run's files are, writing them, reading class names back,
// and clearing what a killed writer left.
#include "common/run_folder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/testing/files.h"
#include "tests/testing/status_matchers.h"

namespace selene {
namespace {

namespace fs = std::filesystem;

TEST(RunFolderTest, NamesEveryFileOfARun) {
  const RunFolder folder("runs/moon");
  EXPECT_EQ(folder.best_checkpoint(), "runs/moon/best.pt");
  EXPECT_EQ(folder.last_checkpoint(), "runs/moon/last.pt");
  EXPECT_EQ(folder.spec(), "runs/moon/spec.json");
  EXPECT_EQ(folder.data_summary(), "runs/moon/data_summary.json");
  EXPECT_EQ(folder.class_names(), "runs/moon/class_names.txt");
  EXPECT_EQ(folder.history(), "runs/moon/history.csv");
  EXPECT_EQ(folder.metrics(), "runs/moon/metrics.json");
  EXPECT_EQ(folder.report(), "runs/moon/report.md");
  EXPECT_EQ(folder.run_summary(), "runs/moon/run_summary.json");
  EXPECT_EQ(folder.File("curves.png"), "runs/moon/curves.png");
  EXPECT_EQ(RunFolder::OfJob("var", "job-7").path(), "var/jobs/job-7");
}

TEST(RunFolderTest, CreatesWritesAndReadsClassNames) {
  const testing::TempDir dir;
  const RunFolder folder(dir / "a/b/run");
  ASSERT_OK(folder.Create());
  EXPECT_FALSE(folder.Has(RunFolder::kClassNames));
  EXPECT_TRUE(folder.ReadClassNames().empty()) << "no file: no names";
  ASSERT_OK(folder.Write(RunFolder::kClassNames, " background \ndisc\r\nsquare\n\n\n"));
  EXPECT_TRUE(folder.Has(RunFolder::kClassNames));
  EXPECT_EQ(folder.ReadClassNames(), (std::vector<std::string>{"background", "disc", "square"}));
  EXPECT_EQ(testing::ReadFile(folder.class_names()), " background \ndisc\r\nsquare\n\n\n");
}

TEST(RunFolderTest, RemovesOnlyTemporaryFiles) {
  const testing::TempDir dir;
  const RunFolder folder(dir.path());
  for (const char* name : {"last.pt.tmp-123-4", "history.csv.tmp", "best.pt", "report.md"}) {
    std::ofstream(folder.File(name)) << "x";
  }
  folder.RemoveTemporaryFiles();
  std::vector<std::string> left;
  for (const auto& entry : fs::directory_iterator(folder.path())) {
    left.push_back(entry.path().filename().string());
  }
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"best.pt", "report.md"}));
}

}  // namespace
}  // namespace selene
