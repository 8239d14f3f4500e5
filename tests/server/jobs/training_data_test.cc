// Tests server/jobs/training_data.h: synthetic and file data sets as a plan asks for them, their
// summaries, refusals, and a short run on the real Tiny ImageNet sample that must learn.
#include "server/jobs/training_data.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "server/jobs/training_plan.h"
#include "server/train/threads.h"
#include "server/train/trainer.h"
#include "spec/json_io.h"
#include "spec/network_builder.h"
#include "tests/testing/tiny_job_specs.h"

namespace selene::jobs {
namespace {

namespace fs = std::filesystem;
using ::selene::testing::MustResolve;
using ::testing::HasSubstr;

v1::JobSpec Parse(const std::string& json) {
  StatusOr<v1::JobSpec> spec = spec::ParseJobSpecJson(json);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

// ../shared/data, or "" when this checkout has no samples beside it.
std::string SharedData() {
  const char* dir = std::getenv("SELENE_SHARED_DATA");
  if (dir == nullptr || !fs::is_directory(dir)) return "";
  return dir;
}

#define SKIP_WITHOUT_SHARED_DATA()                                                         \
  if (SharedData().empty()) {                                                              \
    GTEST_SKIP() << "SELENE_SHARED_DATA (../shared/data) is absent: real samples skipped"; \
  }

TEST(LoadTrainingDataTest, SyntheticMoonSplitsSummarisesAndFitsThePlan) {
  StatusOr<TrainingPlan> plan = PlanTraining(MustResolve(Parse(R"json({
    "task": "binary_segmentation",
    "model": {"unet": {"base_width": 8}},
    "data": {"kind": "synthetic_moon", "num_samples": 24, "image_size": 32},
    "training": {"epochs": 3, "batch_size": 4}
  })json")));
  ASSERT_TRUE(plan.ok()) << plan.status();
  StatusOr<TrainingData> data = LoadTrainingData(plan->spec.data(), "data");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->split.train.size() + data->split.val.size(), 24);
  EXPECT_GT(data->split.val.size(), 0);
  EXPECT_EQ(data->split.train.images.size(2), 32);
  EXPECT_TRUE(CheckDataFitsPlan(*plan, data->split).ok());
  // The summary counts every pixel of every mask once, as background or rock.
  const data::DataSummary& summary = data->summary;
  EXPECT_EQ(summary.train_items + summary.val_items, 24);
  ASSERT_EQ(summary.pixels_per_class.size(), 2u);
  EXPECT_EQ(summary.pixels_per_class[0] + summary.pixels_per_class[1], 24 * 32 * 32);
  const int64_t rock_pixels = data->split.train.targets.sum().item<int64_t>() +
                              data->split.val.targets.sum().item<int64_t>();
  EXPECT_EQ(summary.pixels_per_class[1], rock_pixels);
}

TEST(LoadTrainingDataTest, SyntheticShapesCountsImagesPerClass) {
  StatusOr<TrainingPlan> plan = PlanTraining(MustResolve(Parse(R"json({
    "task": "classification",
    "model": {"classifier": {"stem_width": 8, "stage_widths": [8, 8, 8, 8],
                             "stage_blocks": [1, 1, 1, 1]}},
    "data": {"kind": "synthetic_shapes", "num_classes": 3, "num_samples": 30, "image_size": 32}
  })json")));
  ASSERT_TRUE(plan.ok()) << plan.status();
  StatusOr<TrainingData> data = LoadTrainingData(plan->spec.data(), "");
  ASSERT_TRUE(data.ok()) << data.status();
  // Image i has class i mod 3: ten of each.
  EXPECT_EQ(data->summary.images_per_class, (std::vector<int64_t>{10, 10, 10}));
  EXPECT_EQ(data->summary.class_names.size(), 3u);
}

TEST(LoadTrainingDataTest, ShapesSegmentationClassCountMatchesTheModel) {
  StatusOr<TrainingPlan> plan = PlanTraining(MustResolve(Parse(R"json({
    "task": "multiclass_segmentation",
    "model": {"unet": {"base_width": 4}},
    "data": {"kind": "synthetic_shapes_segmentation", "num_classes": 3, "num_samples": 12,
             "image_size": 32}
  })json")));
  ASSERT_TRUE(plan.ok()) << plan.status();
  StatusOr<TrainingData> data = LoadTrainingData(plan->spec.data(), "data");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_TRUE(CheckDataFitsPlan(*plan, data->split).ok());
}

TEST(LoadTrainingDataTest, PathOutsideTheDataRootIsRefused) {
  const std::string root = (fs::temp_directory_path() / "selene_training_data_root").string();
  fs::create_directories(root);
  spec::DataRequest request;
  request.task = train::Task::kBinarySegmentation;
  request.kind = spec::DataKind::kMoon;
  request.path = "../elsewhere";
  StatusOr<TrainingData> data = LoadTrainingData(request, root);
  ASSERT_FALSE(data.ok());
  EXPECT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(data.status().message()), HasSubstr("../elsewhere"));
}

TEST(LoadTrainingDataTest, MissingFolderIsNotFoundNamingIt) {
  spec::DataRequest request;
  request.kind = spec::DataKind::kTinyImageNet;
  request.path = "no-such-tiny-imagenet";
  StatusOr<TrainingData> data = LoadTrainingData(request, fs::temp_directory_path().string());
  ASSERT_FALSE(data.ok());
  EXPECT_EQ(data.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(data.status().message()), HasSubstr("no-such-tiny-imagenet"));
}

// The plan's route through the real readers: Tiny ImageNet stays 64x64 in memory while the
// model is planned for 128x128 (the loader resizes on the device).
TEST(LoadTrainingDataTest, TinyImageNetSampleThroughThePlan) {
  SKIP_WITHOUT_SHARED_DATA();
  StatusOr<TrainingPlan> plan = PlanTraining(MustResolve(Parse(R"json({
    "task": "classification",
    "model": {"classifier": {}},
    "data": {"kind": "tiny_imagenet", "path": "tiny-imagenet-200-10c", "num_classes": 4,
             "image_size": 128}
  })json")));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->trainer.input_size, 128);
  StatusOr<TrainingData> data = LoadTrainingData(plan->spec.data(), SharedData());
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->split.train.size(), 4 * 500);
  EXPECT_EQ(data->split.val.size(), 4 * 50);
  EXPECT_EQ(data->split.train.images.size(2), 64);
  EXPECT_TRUE(CheckDataFitsPlan(*plan, data->split).ok());
}

// A stop (a cancel, a shutdown) reaches data preparation: generation checks it between chunks of
// images, so even images of 4096 x 4096, which take minutes to make, end at once.
TEST(LoadTrainingDataTest, GenerationStopsWhenAskedAndReturnsCancelled) {
  spec::DataRequest request;
  request.task = train::Task::kBinarySegmentation;
  request.kind = spec::DataKind::kSyntheticMoon;
  request.num_samples = 32;
  request.image_size = 4096;
  std::atomic<bool> stop(true);
  DataLoadOptions options;
  options.stop = &stop;
  StatusOr<TrainingData> data = LoadTrainingData(request, "", options);
  EXPECT_EQ(data.status().code(), StatusCode::kCancelled) << data.status();
  EXPECT_THAT(data.status().message(), HasSubstr("cancelled while generating"));
}

// Decoding checks the stop before every file: a stop after the first progress report ends the
// load with Cancelled instead of decoding the other files.
TEST(LoadTrainingDataTest, DecodingStopsWhenAskedAndReturnsCancelled) {
  SKIP_WITHOUT_SHARED_DATA();
  StatusOr<TrainingPlan> plan = PlanTraining(MustResolve(Parse(R"json({
    "task": "classification",
    "model": {"classifier": {}},
    "data": {"kind": "tiny_imagenet", "path": "tiny-imagenet-200-10c", "num_classes": 4}
  })json")));
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::atomic<bool> stop(false);
  int64_t reports = 0;
  DataLoadOptions options;
  options.decode_threads = 1;
  options.stop = &stop;
  options.on_progress = [&](int64_t done, int64_t total) {
    ++reports;
    if (done < total) stop.store(true);
  };
  StatusOr<TrainingData> data = LoadTrainingData(plan->spec.data(), SharedData(), options);
  EXPECT_EQ(data.status().code(), StatusCode::kCancelled) << data.status();
  EXPECT_THAT(data.status().message(), HasSubstr("cancelled while decoding"));
  EXPECT_GE(reports, 1);
}

// A short run on the real 10-class sample learns: validation top-1 well above the 10% of
// chance. Small classifier at the native 64x64 so it fits in about a minute on 2 cores.
TEST(TinyImageNetTrainingTest, ShortRunLearnsAboveChance) {
  SKIP_WITHOUT_SHARED_DATA();
  train::ConfigureTorchThreads();
  StatusOr<TrainingPlan> plan = PlanTraining(MustResolve(Parse(R"json({
    "task": "classification",
    "model": {"classifier": {"stem_width": 16, "stage_widths": [16, 32, 64, 128],
                             "stage_blocks": [1, 1, 1, 1]}},
    "data": {"kind": "tiny_imagenet", "path": "tiny-imagenet-200-10c", "num_classes": 10,
             "image_size": 64,
             "augmentation": {"hflip": true}},
    "training": {"epochs": 4, "batch_size": 64,
                 "optimizer": {"kind": "adamw", "lr": 0.003},
                 "schedule": {"kind": "cosine", "warmup_epochs": 1}, "seed": 3}
  })json")));
  ASSERT_TRUE(plan.ok()) << plan.status();
  StatusOr<models::Network> network = spec::BuildNetwork(plan->spec);
  ASSERT_TRUE(network.ok()) << network.status();
  StatusOr<TrainingData> data = LoadTrainingData(plan->spec.data(), SharedData());
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_EQ(data->split.train.num_classes(), 10);
  train::Trainer trainer(*network, plan->trainer);
  StatusOr<train::TrainResult> result = trainer.Run(data->split);
  ASSERT_TRUE(result.ok()) << result.status();
  for (const train::EpochRecord& r : result->history) {
    std::printf(
        "  epoch %lld: train loss %.3f, val loss %.3f, top1 %.3f, %.0f img/s, data wait "
        "%.1f%%\n",
        static_cast<long long>(r.epoch + 1), r.train_loss, r.val_loss, r.val_metrics.at("top1"),
        r.images_per_second, 100.0 * r.data_wait_fraction);
  }
  EXPECT_GE(result->best_value, 0.35) << "top-1 of 10 classes; chance is 0.10";
}

}  // namespace
}  // namespace selene::jobs
