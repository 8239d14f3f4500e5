#include "server/report/sample_grid.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <opencv2/imgcodecs.hpp>

#include <cstdlib>
#include <string>

#include "server/report/plot_canvas.h"

namespace selene::report {
namespace {

std::string OutPath(const std::string& name) {
  const char* look = std::getenv("SELENE_REPORT_LOOK");
  return (look != nullptr ? std::string(look) + "/" : ::testing::TempDir()) + name;
}

int Count(const cv::Mat& image, const cv::Rect& area, const cv::Vec3b& colour, int tolerance = 30) {
  int count = 0;
  for (int y = area.y; y < area.y + area.height; ++y) {
    for (int x = area.x; x < area.x + area.width; ++x) {
      const cv::Vec3b p = image.at<cv::Vec3b>(y, x);
      if (std::abs(p[0] - colour[0]) + std::abs(p[1] - colour[1]) + std::abs(p[2] - colour[2]) <
          tolerance) {
        ++count;
      }
    }
  }
  return count;
}

cv::Vec3b Vec(const cv::Scalar& s) {
  return cv::Vec3b(static_cast<uint8_t>(s[0]), static_cast<uint8_t>(s[1]),
                   static_cast<uint8_t>(s[2]));
}

// Grey-ish gradient images, so no image pixel is pure black, white or saturated.
torch::Tensor Images(int64_t n, int64_t channels, int64_t size) {
  torch::Tensor ramp = torch::linspace(60, 200, size).to(torch::kUInt8);
  return ramp.view({1, 1, 1, size}).expand({n, channels, size, size}).contiguous();
}

// Column `c` (0 input, 1 prediction, 2 truth) of the first sample row: the canvas is split in
// thirds by the gaps, and the first row starts below the 50 px header.
cv::Rect FirstRowColumn(const cv::Mat& image, int c) {
  return cv::Rect(image.cols * c / 3 + 25, 60, image.cols / 3 - 50, 150);
}

TEST(SampleGridTest, BinarySegmentationShowsFiveRowsOfMasks) {
  SampleSet s;
  s.task = train::Task::kBinarySegmentation;
  s.images = Images(7, 3, 32);
  s.truths = torch::zeros({7, 32, 32}, torch::kUInt8);
  s.truths.slice(1, 8, 24).slice(2, 8, 24).fill_(1);  // a 16x16 square in each truth
  s.predictions = torch::zeros({7, 32, 32}, torch::kLong);
  s.predictions.slice(1, 10, 26).slice(2, 10, 26).fill_(1);
  s.predictions[0].fill_(0);  // the first prediction misses everything
  s.class_names = {"rock"};
  const std::string path = OutPath("samples_binary.png");
  ASSERT_TRUE(WriteSamplesPng(path, s).ok());
  const cv::Mat image = cv::imread(path, cv::IMREAD_COLOR);
  ASSERT_FALSE(image.empty());
  // 32 px images are shown at >= 192 px: three columns wide, five rows (not seven) tall.
  EXPECT_GE(image.cols, 3 * 192);
  EXPECT_GE(image.rows, 5 * 192);
  EXPECT_LT(image.rows, 7 * 192);
  const cv::Vec3b black(0, 0, 0), white(255, 255, 255);
  EXPECT_EQ(Count(image, FirstRowColumn(image, 0), black), 0) << "the input is grey";
  // Row 1: an empty prediction is all black; the truth holds a white square.
  const int pred_black = Count(image, FirstRowColumn(image, 1), black);
  const int truth_black = Count(image, FirstRowColumn(image, 2), black);
  EXPECT_GT(pred_black, truth_black + 1000);
  EXPECT_GT(Count(image, FirstRowColumn(image, 2), white), 1000);
}

TEST(SampleGridTest, MultiClassUsesClassColoursAndHatchesIgnoredPixels) {
  SampleSet s;
  s.task = train::Task::kMultiClassSegmentation;
  s.images = Images(3, 1, 48);
  s.truths = torch::zeros({3, 48, 48}, torch::kLong);
  s.truths.slice(2, 0, 16).fill_(1);
  s.truths.slice(2, 16, 32).fill_(2);
  s.truths.slice(1, 40, 48).fill_(255);  // void strip along the bottom
  s.predictions = torch::zeros({3, 1, 48, 48}, torch::kLong);
  s.predictions.slice(3, 0, 20).fill_(1);
  s.predictions.slice(3, 20, 30).fill_(2);
  s.class_names = {"background", "disc", "square"};
  s.ignore_index = 255;
  const std::string path = OutPath("samples_multiclass.png");
  ASSERT_TRUE(WriteSamplesPng(path, s).ok());
  const cv::Mat image = cv::imread(path, cv::IMREAD_COLOR);
  ASSERT_FALSE(image.empty());
  const cv::Rect pred = FirstRowColumn(image, 1);
  const cv::Rect truth(FirstRowColumn(image, 2).x, 60, pred.width, 200);
  for (int64_t c : {1, 2}) {
    EXPECT_GT(Count(image, pred, Vec(ClassColour(c)), 10), 1000) << "class " << c;
    EXPECT_GT(Count(image, truth, Vec(ClassColour(c)), 10), 1000) << "class " << c;
  }
  // Ignored pixels: both hatch greys in the truth, none in the prediction.
  EXPECT_GT(Count(image, truth, cv::Vec3b(170, 170, 170), 3), 200);
  EXPECT_GT(Count(image, truth, cv::Vec3b(100, 100, 100), 3), 200);
  EXPECT_EQ(Count(image, cv::Rect(pred.x, 60, pred.width, 200), cv::Vec3b(100, 100, 100), 3), 0);
  // The palette keeps classes apart and never uses grey.
  for (int64_t a = 0; a < 40; ++a) {
    const cv::Scalar ca = ClassColour(a);
    EXPECT_FALSE(ca[0] == ca[1] && ca[1] == ca[2] && ca[0] > 0 && ca[0] < 255) << a;
    for (int64_t b = a + 1; b < 40; ++b) EXPECT_NE(ca, ClassColour(b)) << a << " vs " << b;
  }
}

TEST(SampleGridTest, ClassificationCaptionsRightInGreenAndWrongInRed) {
  SampleSet s;
  s.task = train::Task::kClassification;
  s.images = Images(10, 3, 64);
  s.truths = torch::tensor({0, 1, 2, 3, 0, 1, 2, 3, 0, 1}, torch::kLong);
  s.predictions = torch::tensor({0, 1, 2, 0, 0, 1, 3, 3, 0, 2}, torch::kLong);
  s.class_names = {"circle", "square", "triangle", "a class with a very long name indeed"};
  const std::string path = OutPath("samples_classification.png");
  ASSERT_TRUE(WriteSamplesPng(path, s).ok());
  const cv::Mat image = cv::imread(path, cv::IMREAD_COLOR);
  ASSERT_FALSE(image.empty());
  const cv::Rect all(0, 0, image.cols, image.rows);
  EXPECT_GE(image.cols, 4 * 128);
  EXPECT_GE(image.rows, 3 * 128);  // 10 images in rows of 4
  const int green = Count(image, all, cv::Vec3b(0, 140, 0), 40);
  const int red = Count(image, all, cv::Vec3b(0, 0, 210), 40);
  EXPECT_GT(green, red) << "7 right, 3 wrong";
  EXPECT_GT(red, 500);

  s.predictions = s.truths.clone();
  ASSERT_TRUE(WriteSamplesPng(OutPath("samples_all_right.png"), s).ok());
  const cv::Mat right = cv::imread(OutPath("samples_all_right.png"), cv::IMREAD_COLOR);
  ASSERT_FALSE(right.empty());
  EXPECT_EQ(Count(right, all, cv::Vec3b(0, 0, 210), 40), 0);
}

TEST(SampleGridTest, BadShapesAreNamed) {
  SampleSet s;
  s.task = train::Task::kBinarySegmentation;
  s.images = Images(2, 3, 16);
  s.truths = torch::zeros({2, 16, 16}, torch::kUInt8);
  s.predictions = torch::zeros({2, 8, 8}, torch::kLong);
  Status status = WriteSamplesPng(OutPath("never.png"), s);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("predictions"), std::string::npos) << status;

  s.images = Images(2, 2, 16);
  status = WriteSamplesPng(OutPath("never.png"), s);
  EXPECT_NE(status.message().find("images"), std::string::npos) << status;
}

}  // namespace
}  // namespace selene::report
