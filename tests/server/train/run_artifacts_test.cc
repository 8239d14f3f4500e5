#include "server/train/run_artifacts.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <sstream>
#include <string>

#include "tests/testing/files.h"

namespace selene::train {
namespace {

using ::selene::testing::ReadFile;
using ::selene::testing::TempDir;

TrainResult TwoEpochs() {
  TrainResult result;
  EpochRecord first;
  first.epoch = 0;
  first.train_loss = 0.5;
  first.val_loss = 0.4;
  first.val_metrics = {{"top1", 0.25}, {"f1/goldfish, carp", std::nan("")}};
  EpochRecord second = first;
  second.epoch = 1;
  second.val_loss = 0.3;
  second.val_metrics = {{"top1", 0.75}, {"f1/goldfish, carp", 0.5}};
  result.history = {first, second};
  result.best_epoch = 0;  // so the best epoch is the one holding a NaN
  result.best_value = 0.25;
  return result;
}

TEST(RunArtifactsTest, HistoryCsvHasOneRowPerEpochAndQuotesNames) {
  TempDir dir;
  const std::string path = dir / "history.csv";
  ASSERT_TRUE(WriteHistoryCsv(path, TwoEpochs().history).ok());
  std::istringstream lines(ReadFile(path));
  std::string header, row1, row2, extra;
  std::getline(lines, header);
  std::getline(lines, row1);
  std::getline(lines, row2);
  EXPECT_FALSE(std::getline(lines, extra));
  EXPECT_EQ(header,
            "epoch,train_loss,val_loss,learning_rate,seconds,images_per_second,"
            "data_wait_fraction,\"val_f1/goldfish, carp\",val_top1");
  EXPECT_EQ(row1.substr(0, 12), "1,0.5,0.4,0,");
  EXPECT_EQ(row1.substr(row1.size() - 6), ",,0.25") << "NaN is an empty cell";
  EXPECT_EQ(row2.substr(row2.size() - 9), ",0.5,0.75");
}

TEST(RunArtifactsTest, MetricsJsonNamesBestAndFinalEpochs) {
  TempDir dir;
  const std::string path = dir / "metrics.json";
  ASSERT_TRUE(WriteMetricsJson(path, TwoEpochs(), "top1").ok());
  const std::string json = ReadFile(path);
  EXPECT_NE(json.find("\"monitor\": \"top1\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"higher_is_better\": true"), std::string::npos);
  EXPECT_NE(json.find("\"best_value\": 0.25"), std::string::npos);
  EXPECT_NE(json.find("\"epoch\": 1"), std::string::npos) << "best; epochs are 1-based";
  EXPECT_NE(json.find("\"epoch\": 2"), std::string::npos) << "final";
  EXPECT_NE(json.find("\"f1/goldfish, carp\": null"), std::string::npos) << "NaN is null";
}

TEST(RunArtifactsTest, UnwritablePathIsAnError) {
  Status status = WriteHistoryCsv("/nonexistent-dir/history.csv", {});
  EXPECT_FALSE(status.ok());
  EXPECT_NE(std::string(status.message()).find("/nonexistent-dir/history.csv"), std::string::npos);
}

}  // namespace
}  // namespace selene::train
