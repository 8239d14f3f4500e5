#include "server/report/run_comparison.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "server/report/run_summary.h"
#include "tests/testing/files.h"

namespace selene::report {
namespace {

v1::RunSummary Segmentation(const std::string& name, const std::string& family,
                            const std::string& mode, int64_t parameters, double val_loss,
                            double dice, double iou) {
  v1::RunSummary s;
  s.set_name(name);
  s.set_task(v1::TASK_BINARY_SEGMENTATION);
  s.set_model_family(family);
  s.set_encoder_mode(mode);
  s.set_parameters(parameters);
  s.set_epochs_run(10);
  s.set_best_epoch(8);
  s.set_best_val_loss(val_loss);
  (*s.mutable_best_metrics())["dice"] = dice;
  (*s.mutable_best_metrics())["iou"] = iou;
  (*s.mutable_best_metrics())["pixel_accuracy"] = 0.97;
  return s;
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

TEST(RunComparisonTest, UNetAgainstFrozenEncoderUNet) {
  const std::string table = FormatComparisonTable({
      Segmentation("moon-unet", "unet", "", 1942577, 0.21, 0.8123, 0.70),
      Segmentation("moon-frozen", "encoder_unet", "frozen", 3455537, 0.25, 0.8541, 0.69),
  });
  const std::vector<std::string> lines = Lines(table);
  ASSERT_EQ(lines.size(), 4u) << table;  // header, separator, two runs
  for (const char* column : {"run", "model", "parameters", "encoder", "best epoch", "val loss",
                             "Dice", "IoU", "pixel accuracy"}) {
    EXPECT_NE(lines[0].find(column), std::string::npos) << column;
  }
  EXPECT_NE(lines[1].find("---:"), std::string::npos) << "numbers right-aligned";
  EXPECT_EQ(lines[1].rfind("| :", 0), 0u) << "run name left-aligned";
  for (const std::string& line : lines) EXPECT_EQ(line.size(), lines[0].size()) << line;

  const std::string& unet = lines[2];
  const std::string& frozen = lines[3];
  EXPECT_NE(unet.find("U-Net"), std::string::npos);
  EXPECT_NE(unet.find("1,942,577"), std::string::npos);
  EXPECT_NE(frozen.find("encoder U-Net"), std::string::npos);
  EXPECT_NE(frozen.find("frozen"), std::string::npos);
  EXPECT_NE(frozen.find("8 / 10"), std::string::npos);
  // Best Dice on the frozen row, best val loss and IoU on the U-Net row; a tie is bold on both.
  EXPECT_NE(frozen.find("**0.8541**"), std::string::npos) << frozen;
  EXPECT_EQ(unet.find("**0.8123**"), std::string::npos) << unet;
  EXPECT_NE(unet.find("**0.2100**"), std::string::npos) << unet;
  EXPECT_NE(unet.find("**0.7000**"), std::string::npos) << unet;
  EXPECT_NE(unet.find("**0.9700**"), std::string::npos);
  EXPECT_NE(frozen.find("**0.9700**"), std::string::npos);
}

TEST(RunComparisonTest, OneTablePerTaskAndUndefinedValues) {
  v1::RunSummary classifier;
  classifier.set_name("shapes");
  classifier.set_task(v1::TASK_CLASSIFICATION);
  classifier.set_model_family("classifier");
  classifier.set_parameters(2846440);
  classifier.set_epochs_run(5);
  classifier.set_best_epoch(5);
  classifier.set_best_val_loss(0.3);
  (*classifier.mutable_best_metrics())["top1"] = 0.93;
  (*classifier.mutable_best_metrics())["macro_f1"] = std::nan("");
  const std::string text =
      FormatComparisonTable({Segmentation("a", "unet", "", 10, 0.2, 0.8, 0.7), classifier,
                             Segmentation("b", "unet", "", 20, 0.3, 0.7, 0.6)});
  const size_t segmentation = text.find("**Binary segmentation**");
  const size_t classification = text.find("**Classification**");
  ASSERT_NE(segmentation, std::string::npos) << text;
  ASSERT_NE(classification, std::string::npos) << text;
  EXPECT_LT(segmentation, classification) << "order of first appearance";
  const std::string classification_table = text.substr(classification);
  EXPECT_NE(classification_table.find("top-1"), std::string::npos);
  EXPECT_NE(classification_table.find("macro F1"), std::string::npos);
  EXPECT_EQ(classification_table.find("Dice"), std::string::npos);
  // One run: nothing to be best against; missing top5 and NaN macro F1 read "-".
  EXPECT_EQ(classification_table.find("**"), classification_table.rfind("**Classification**"))
      << classification_table;
  EXPECT_NE(classification_table.find("| 0.9300 |     - |        - |"), std::string::npos)
      << classification_table;
  EXPECT_EQ(FormatComparisonTable({}), "_No runs to compare._\n");
}

TEST(RunComparisonTest, CompareRunDirsReadsSummariesAndNamesMissingOnes) {
  const testing::TempDir dir;
  const std::filesystem::path root = dir / "compare";
  std::filesystem::create_directories(root / "unet");
  std::filesystem::create_directories(root / "frozen");
  std::filesystem::create_directories(root / "empty");
  ASSERT_TRUE(WriteRunSummaryJson((root / "unet" / "run_summary.json").string(),
                                  Segmentation("moon-unet", "unet", "", 100, 0.2, 0.8, 0.7))
                  .ok());
  ASSERT_TRUE(WriteRunSummaryJson((root / "frozen" / "run_summary.json").string(),
                                  Segmentation("", "encoder_unet", "frozen", 200, 0.3, 0.9, 0.8))
                  .ok());

  StatusOr<std::string> table =
      CompareRunDirs({(root / "unet").string(), (root / "frozen").string() + "/"});
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_NE(table->find("moon-unet"), std::string::npos);
  EXPECT_NE(table->find("| frozen "), std::string::npos) << "folder name for a nameless run\n"
                                                         << *table;
  EXPECT_NE(table->find("**0.9000**"), std::string::npos);

  const std::string missing = (root / "no-such-run").string();
  StatusOr<std::string> error = CompareRunDirs({(root / "unet").string(), missing});
  EXPECT_EQ(error.status().code(), StatusCode::kNotFound);
  EXPECT_NE(error.status().message().find(missing), std::string::npos) << error.status();

  error = CompareRunDirs({(root / "empty").string()});
  EXPECT_EQ(error.status().code(), StatusCode::kNotFound);
  EXPECT_NE(error.status().message().find((root / "empty").string()), std::string::npos);
  EXPECT_NE(error.status().message().find("run_summary.json"), std::string::npos);

  EXPECT_EQ(CompareRunDirs({}).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace selene::report
