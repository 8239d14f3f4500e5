#include "server/report/run_summary.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

#include "server/train/trainer.h"
#include "tests/testing/files.h"
#include "tests/testing/tiny_job_specs.h"

namespace selene::report {
namespace {

train::TrainResult ThreeEpochs() {
  train::TrainResult result;
  for (int e = 0; e < 3; ++e) {
    train::EpochRecord r;
    r.epoch = e;
    r.train_loss = 0.5 - 0.1 * e;
    r.val_loss = 0.6 - 0.1 * e + (e == 2 ? 0.15 : 0.0);
    r.val_metrics = {{"dice", 0.7 + 0.05 * e}, {"iou", 0.5 + 0.05 * e}, {"pixel_accuracy", 0.9}};
    result.history.push_back(r);
  }
  result.history[1].val_metrics["iou"] = std::nan("");
  result.best_epoch = 1;
  result.best_value = 0.75;
  result.stopped_early = true;
  return result;
}

v1::JobSpec EncoderSpec() {
  v1::JobSpec spec;
  spec.set_name("moon-encoder-frozen");
  spec.set_task(v1::TASK_BINARY_SEGMENTATION);
  spec.mutable_model()->mutable_encoder_unet()->set_encoder_mode(v1::ENCODER_MODE_FROZEN);
  spec.mutable_model()->mutable_encoder_unet()->set_encoder_checkpoint("classifier/best.pt");
  spec.mutable_data()->set_kind(v1::DATA_KIND_SYNTHETIC_MOON);
  spec.mutable_data()->set_image_size(64);
  spec.mutable_training()->set_monitor("dice");
  return spec;
}

TEST(RunSummaryTest, MadeFromSpecAndResult) {
  const v1::RunSummary s = MakeRunSummary("moon-frozen", testing::MustResolve(EncoderSpec()),
                                          3455537, ThreeEpochs(), 12.5);
  EXPECT_EQ(s.name(), "moon-frozen");
  EXPECT_EQ(s.task(), v1::TASK_BINARY_SEGMENTATION);
  EXPECT_EQ(s.model_family(), "encoder_unet");
  EXPECT_EQ(s.encoder_mode(), "frozen");
  EXPECT_EQ(s.parameters(), 3455537);
  EXPECT_EQ(s.data_kind(), "synthetic_moon");
  EXPECT_EQ(s.image_size(), 64);
  EXPECT_EQ(s.epochs_run(), 3);
  EXPECT_EQ(s.best_epoch(), 2) << "1-based";
  EXPECT_EQ(s.monitor(), "dice");
  EXPECT_DOUBLE_EQ(s.best_value(), 0.75);
  EXPECT_DOUBLE_EQ(s.best_val_loss(), 0.5);
  EXPECT_DOUBLE_EQ(s.best_metrics().at("dice"), 0.75);
  EXPECT_TRUE(std::isnan(s.best_metrics().at("iou")));
  EXPECT_DOUBLE_EQ(s.final_metrics().at("dice"), 0.8);
  EXPECT_DOUBLE_EQ(s.final_val_loss(), 0.55);
  EXPECT_DOUBLE_EQ(s.total_seconds(), 12.5);
  EXPECT_TRUE(s.stopped_early());

  v1::JobSpec unet;
  unet.set_task(v1::TASK_CLASSIFICATION);
  unet.mutable_model()->mutable_classifier();
  unet.mutable_data()->set_kind(v1::DATA_KIND_SYNTHETIC_SHAPES);
  const v1::RunSummary c =
      MakeRunSummary("c", testing::MustResolve(unet), 10, train::TrainResult{}, 0.0);
  EXPECT_EQ(c.model_family(), "classifier");
  EXPECT_EQ(c.encoder_mode(), "");
  EXPECT_EQ(c.monitor(), "top1") << "the task's headline when the spec has none";
  EXPECT_EQ(c.best_epoch(), 0) << "no epoch";
  EXPECT_EQ(c.epochs_run(), 0);

  v1::JobSpec scratch = EncoderSpec();
  scratch.mutable_model()->mutable_encoder_unet()->clear_encoder_mode();
  scratch.mutable_model()->mutable_encoder_unet()->clear_encoder_checkpoint();
  EXPECT_EQ(MakeRunSummary("s", testing::MustResolve(scratch), 1, ThreeEpochs(), 0).encoder_mode(),
            "scratch");
}

TEST(RunSummaryTest, JsonRoundTripKeepsEveryField) {
  const v1::RunSummary s = MakeRunSummary("moon-frozen", testing::MustResolve(EncoderSpec()),
                                          3455537, ThreeEpochs(), 12.5);
  const testing::TempDir dir;
  const std::string path = dir / "run_summary.json";
  ASSERT_TRUE(WriteRunSummaryJson(path, s).ok());
  const std::string text = testing::ReadFile(path);
  EXPECT_NE(text.find("\"encoder_mode\": \"frozen\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"best_metrics\""), std::string::npos);
  EXPECT_NE(text.find("\"cancelled\": false"), std::string::npos) << "zero fields too";

  StatusOr<v1::RunSummary> back = ReadRunSummaryJson(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(std::isnan(back->best_metrics().at("iou"))) << "NaN survives as \"NaN\"";
  v1::RunSummary a = s, b = *back;
  a.mutable_best_metrics()->erase("iou");
  b.mutable_best_metrics()->erase("iou");
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(a, b))
      << a.DebugString() << "\nvs\n"
      << b.DebugString();
  EXPECT_EQ(b.parameters(), 3455537);
  EXPECT_EQ(b.best_metrics().size(), 2u);
}

TEST(RunSummaryTest, ReadErrorsNameTheFile) {
  StatusOr<v1::RunSummary> missing = ReadRunSummaryJson("/nonexistent/run_summary.json");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("/nonexistent/run_summary.json"), std::string::npos);

  const testing::TempDir dir;
  const std::string path = dir / "bad_summary.json";
  std::ofstream(path) << "{\"epochs_run\": \"many\"}";
  StatusOr<v1::RunSummary> bad = ReadRunSummaryJson(path);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find(path), std::string::npos) << bad.status();

  EXPECT_FALSE(WriteRunSummaryJson("/nonexistent/run_summary.json", v1::RunSummary()).ok());
}

}  // namespace
}  // namespace selene::report
