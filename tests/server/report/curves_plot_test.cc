#include "server/report/curves_plot.h"

#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "server/report/plot_canvas.h"
#include "server/train/epoch_record.h"

namespace selene::report {
namespace {

const cv::Scalar kLossColour(40, 39, 214);  // curves_plot.cc's loss colour (BGR)

std::string OutPath(const std::string& name) {
  // SELENE_REPORT_LOOK=dir keeps the images for a person to look at.
  const char* look = std::getenv("SELENE_REPORT_LOOK");
  return (look != nullptr ? std::string(look) + "/" : ::testing::TempDir()) + name;
}

std::vector<train::EpochRecord> History(int epochs) {
  std::vector<train::EpochRecord> history;
  for (int e = 0; e < epochs; ++e) {
    train::EpochRecord r;
    r.epoch = e;
    r.train_loss = 0.9 * std::exp(-0.3 * e) + 0.1;
    r.val_loss = 0.95 * std::exp(-0.25 * e) + 0.15 + 0.02 * (e % 2);
    const double dice = 0.9 - 0.6 * std::exp(-0.4 * e);
    r.val_metrics = {
        {"dice", dice}, {"iou", dice / (2 - dice)}, {"pixel_accuracy", 0.9 + dice / 20}};
    r.train_metrics = {{"dice", dice + 0.02}, {"iou", (dice + 0.02) / (1.98 - dice)}};
    r.learning_rate = 1e-3;
    history.push_back(r);
  }
  return history;
}

bool Near(const cv::Vec3b& pixel, const cv::Scalar& colour, int tolerance = 40) {
  return std::abs(pixel[0] - colour[0]) + std::abs(pixel[1] - colour[1]) +
             std::abs(pixel[2] - colour[2]) <
         tolerance;
}

int CountColour(const cv::Mat& image, const cv::Rect& area, const cv::Scalar& colour,
                int tolerance = 40) {
  int count = 0;
  for (int y = area.y; y < area.y + area.height; ++y) {
    for (int x = area.x; x < area.x + area.width; ++x) {
      if (Near(image.at<cv::Vec3b>(y, x), colour, tolerance)) ++count;
    }
  }
  return count;
}

// The plot area minus the band where the legend may sit (its widest possible entry is narrower
// than a third of the plot), so only curves are counted.
cv::Rect Middle(const cv::Rect& plot) {
  return cv::Rect(plot.x + plot.width / 3, plot.y, plot.width / 3, plot.height);
}

TEST(CurvesPlotTest, TenEpochsDrawLossAndEveryMainMetricInTheirPanels) {
  const std::string path = OutPath("curves_10.png");
  ASSERT_TRUE(WriteCurvesPng(path, History(10), train::Task::kBinarySegmentation, 7).ok());
  const cv::Mat image = cv::imread(path, cv::IMREAD_COLOR);
  ASSERT_FALSE(image.empty());
  const CurvesLayout layout = GetCurvesLayout();
  EXPECT_EQ(image.size(), layout.canvas);
  EXPECT_GE(image.cols, 1200);
  EXPECT_GE(image.rows, 450);
  EXPECT_GT(CountColour(image, Middle(layout.loss_plot), kLossColour), 200);
  EXPECT_EQ(CountColour(image, layout.metrics_plot, kLossColour), 0) << "loss left, metrics right";
  for (int m = 0; m < 3; ++m) {
    const cv::Scalar colour = plot::LineColours()[m];
    EXPECT_GT(CountColour(image, Middle(layout.metrics_plot), colour), 60) << "metric " << m;
    EXPECT_EQ(CountColour(image, layout.loss_plot, colour), 0) << "metric " << m;
  }
  // The background stays white: most of the plot area is not painted.
  EXPECT_GT(CountColour(image, layout.loss_plot, plot::kWhite, 3), layout.loss_plot.area() / 2);
}

TEST(CurvesPlotTest, SingleEpochIsDrawnAsMarkers) {
  const std::string path = OutPath("curves_1.png");
  ASSERT_TRUE(WriteCurvesPng(path, History(1), train::Task::kBinarySegmentation, 0).ok());
  const cv::Mat image = cv::imread(path, cv::IMREAD_COLOR);
  ASSERT_FALSE(image.empty());
  const CurvesLayout layout = GetCurvesLayout();
  // The one epoch sits in the middle of the x axis.
  const auto centre_band = [](const cv::Rect& plot) {
    return cv::Rect(plot.x + plot.width / 2 - 12, plot.y, 24, plot.height);
  };
  EXPECT_GT(CountColour(image, centre_band(layout.loss_plot), kLossColour), 30);
  EXPECT_GT(CountColour(image, centre_band(layout.metrics_plot), plot::LineColours()[0]), 30);
}

TEST(CurvesPlotTest, NanValuesAreSkippedAndMissingMetricsLeaveAnEmptyPanel) {
  std::vector<train::EpochRecord> history = History(10);
  history[3].val_metrics["dice"] = std::nan("");
  history[4].val_metrics["dice"] = std::nan("");
  history[5].val_loss = std::nan("");
  const std::string path = OutPath("curves_nan.png");
  ASSERT_TRUE(WriteCurvesPng(path, history, train::Task::kBinarySegmentation, 8).ok());
  const cv::Mat image = cv::imread(path, cv::IMREAD_COLOR);
  ASSERT_FALSE(image.empty());
  const CurvesLayout layout = GetCurvesLayout();
  EXPECT_GT(CountColour(image, Middle(layout.metrics_plot), plot::LineColours()[0]), 60);

  // A classification run whose records hold no classification metrics: loss only.
  ASSERT_TRUE(
      WriteCurvesPng(OutPath("curves_no_metrics.png"), History(3), train::Task::kClassification, -1)
          .ok());
  const cv::Mat empty = cv::imread(OutPath("curves_no_metrics.png"), cv::IMREAD_COLOR);
  ASSERT_FALSE(empty.empty());
  for (const cv::Scalar& colour : plot::LineColours()) {
    EXPECT_EQ(CountColour(empty, layout.metrics_plot, colour), 0);
  }
  EXPECT_GT(CountColour(empty, Middle(layout.loss_plot), kLossColour), 100);
}

TEST(CurvesPlotTest, LongMultiClassHistoryWithoutTrainMetrics) {
  std::vector<train::EpochRecord> history;
  for (int e = 0; e < 150; ++e) {
    train::EpochRecord r;
    r.epoch = e;
    r.train_loss = 2.0 / (1 + 0.1 * e) + (e == 40 ? 3.0 : 0.0);  // one spike
    r.val_loss = 2.1 / (1 + 0.08 * e);
    r.val_metrics = {{"mean_dice", 0.3 + 0.004 * e},
                     {"mean_iou", 0.2 + 0.004 * e},
                     {"pixel_accuracy", 0.8 + 0.001 * e}};
    history.push_back(r);
  }
  const std::string path = OutPath("curves_150.png");
  ASSERT_TRUE(WriteCurvesPng(path, history, train::Task::kMultiClassSegmentation, 149).ok());
  const cv::Mat image = cv::imread(path, cv::IMREAD_COLOR);
  ASSERT_FALSE(image.empty());
  const CurvesLayout layout = GetCurvesLayout();
  for (int m = 0; m < 3; ++m) {
    EXPECT_GT(CountColour(image, Middle(layout.metrics_plot), plot::LineColours()[m]), 60) << m;
  }
  EXPECT_GT(CountColour(image, Middle(layout.loss_plot), kLossColour), 200);
}

TEST(CurvesPlotTest, EmptyHistoryAndBadPathAreErrors) {
  const Status empty = WriteCurvesPng(OutPath("never.png"), {}, train::Task::kClassification, -1);
  EXPECT_EQ(empty.code(), StatusCode::kInvalidArgument);
  const Status bad =
      WriteCurvesPng("/nonexistent-dir/curves.png", History(2), train::Task::kClassification, 0);
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("/nonexistent-dir/curves.png"), std::string::npos) << bad;
}

}  // namespace
}  // namespace selene::report
