#include "server/report/confusion_plot.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <opencv2/imgcodecs.hpp>

#include <cstdlib>
#include <string>

namespace selene::report {
namespace {

std::string OutPath(const std::string& name) {
  const char* look = std::getenv("SELENE_REPORT_LOOK");
  return (look != nullptr ? std::string(look) + "/" : ::testing::TempDir()) + name;
}

// Brightness of a cell away from its centred text and its borders.
int CellBrightness(const cv::Mat& image, int64_t k, int64_t row, int64_t col) {
  const cv::Rect cell = ConfusionCellRect(k, row, col);
  const cv::Vec3b p = image.at<cv::Vec3b>(cell.y + 4, cell.x + 4);
  return p[0] + p[1] + p[2];
}

TEST(ConfusionPlotTest, DiagonalOfAGoodClassifierIsDarkest) {
  const torch::Tensor confusion =
      torch::tensor({8, 1, 1, 2, 6, 2, 0, 1, 9}, torch::kLong).view({3, 3});
  const std::string path = OutPath("confusion_3.png");
  ASSERT_TRUE(WriteConfusionPng(path, confusion, {"cat", "dog", "a very long class name"}).ok());
  const cv::Mat image = cv::imread(path, cv::IMREAD_COLOR);
  ASSERT_FALSE(image.empty());
  const cv::Rect last = ConfusionCellRect(3, 2, 2);
  ASSERT_LE(last.x + last.width, image.cols);
  ASSERT_LE(last.y + last.height, image.rows);
  for (int64_t r = 0; r < 3; ++r) {
    for (int64_t c = 0; c < 3; ++c) {
      if (r == c) continue;
      EXPECT_LT(CellBrightness(image, 3, r, r), CellBrightness(image, 3, r, c)) << r << "," << c;
    }
  }
  // Row-normalised: the 9 of 10 in row 2 is darker than the 6 of 10 in row 1, and an empty
  // cell (row 2, column 0) is near white.
  EXPECT_LT(CellBrightness(image, 3, 2, 2), CellBrightness(image, 3, 1, 1));
  EXPECT_GT(CellBrightness(image, 3, 2, 0), 3 * 240);
  // Cells are blue: the blue channel leads.
  const cv::Rect cell = ConfusionCellRect(3, 0, 0);
  const cv::Vec3b p = image.at<cv::Vec3b>(cell.y + 4, cell.x + 4);
  EXPECT_GT(p[0], p[2] + 50);
}

TEST(ConfusionPlotTest, ManyClassesAndBadInput) {
  const torch::Tensor many = torch::eye(200, torch::kLong) * 50 + 1;
  ASSERT_TRUE(WriteConfusionPng(OutPath("confusion_200.png"), many, {}).ok());
  const cv::Mat image = cv::imread(OutPath("confusion_200.png"), cv::IMREAD_COLOR);
  ASSERT_FALSE(image.empty());
  const cv::Rect last = ConfusionCellRect(200, 199, 199);
  EXPECT_LE(last.x + last.width, image.cols);
  EXPECT_LT(CellBrightness(image, 200, 7, 7), CellBrightness(image, 200, 7, 8));

  Status status = WriteConfusionPng(OutPath("never.png"), torch::zeros({3, 4}), {});
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("[3, 4]"), std::string::npos) << status;
  status = WriteConfusionPng(OutPath("never.png"), torch::zeros({3, 3}), {"a", "b"});
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("2 class names"), std::string::npos) << status;
}

}  // namespace
}  // namespace selene::report
