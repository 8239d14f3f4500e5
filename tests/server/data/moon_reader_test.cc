// MOON through LoadDataset: the real lunar pair (colour-coded mask -> rare rocks), and layouts
// written by the tests: frame pairing, unpaired files, grey and RGB renders of any size, 0/255
// and 0/1 masks, train/ and val/ folders, fraction splits.
#include "server/data/moon_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "server/data/dataset_loader.h"
#include "tests/server/data/data_test_util.h"

namespace selene::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

DatasetOptions MoonOptions(const std::string& root, const std::string& path, int64_t size) {
  DatasetOptions options;
  options.kind = DatasetKind::kMoon;
  options.task = train::Task::kBinarySegmentation;
  options.data_root = root;
  options.path = path;
  options.image_size = size;
  options.decode_threads = 2;
  return options;
}

TEST(FrameNumberTest, LastDigitRun) {
  EXPECT_EQ(FrameNumber("render0001.png"), 1);
  EXPECT_EQ(FrameNumber("ground9766.png"), 9766);
  EXPECT_EQ(FrameNumber("v2_render0012.png"), 12);
  EXPECT_EQ(FrameNumber("render.png"), -1);
}

TEST(MoonSampleTest, LunarPairGivesRareRocks) {
  SELENE_SKIP_WITHOUT_SAMPLE(lunar, "lunar-sample");
  auto d = LoadDataset(MoonOptions(lunar + "/..", "lunar-sample", 256));
  ASSERT_TRUE(d.ok()) << d.status();
  // One item: a fraction split keeps it for training.
  EXPECT_EQ(d->split.train.size(), 1);
  EXPECT_EQ(d->split.val.size(), 0);
  EXPECT_EQ(d->split.train.task, train::Task::kBinarySegmentation);
  EXPECT_THAT(d->split.train.class_names, ElementsAre("rock"));
  EXPECT_EQ(d->split.train.images.sizes(), (std::vector<int64_t>{1, 3, 256, 256}));
  EXPECT_EQ(d->split.train.targets.sizes(), (std::vector<int64_t>{1, 256, 256}));
  EXPECT_EQ(d->split.train.targets.scalar_type(), torch::kUInt8);
  EXPECT_EQ(d->split.train.targets.max().item<int>(), 1);
  EXPECT_EQ(d->summary.image_sizes.at("720x480"), 1);
  EXPECT_EQ(d->summary.images_found, 1);
  EXPECT_EQ(d->summary.masks_found, 1);
  // Nearest-neighbour resizing keeps the share of rock pixels near the native 1.1%.
  const double fraction = d->split.train.targets.to(torch::kFloat).mean().item<double>();
  EXPECT_GT(fraction, 0.006);
  EXPECT_LT(fraction, 0.017);
  ASSERT_EQ(d->summary.pixels_per_class.size(), 2u);
  EXPECT_EQ(d->summary.pixels_per_class[0] + d->summary.pixels_per_class[1], 256 * 256);
  EXPECT_EQ(d->summary.pixels_per_class[1], d->split.train.targets.sum().item<int64_t>());
  EXPECT_EQ(d->summary.empty_masks, 0);
}

// 0/255 block mask at (x, y, w, h) on a width x height canvas.
cv::Mat BlockMask(int width, int height, cv::Rect block, uint8_t on) {
  cv::Mat mask = cv::Mat::zeros(height, width, CV_8UC1);
  mask(block).setTo(on);
  return mask;
}

TEST(MoonLayoutTest, PairsByFrameNumberAndNamesUnpaired) {
  testing::TempDir dir;
  const std::string moon = dir / "moon";
  // Frame 1: RGB render, 0/255 mask. Frame 2: grey render, 0/1 mask. Frame 3: render only.
  // Frame 4: mask only. Frame 5: empty mask.
  testing::WriteImage(moon + "/images/render/render0001.png", testing::PatternImage(64, 32, 1));
  testing::WriteImage(moon + "/images/ground/ground0001.png",
                      BlockMask(64, 32, cv::Rect(0, 0, 32, 32), 255));
  cv::Mat grey(32, 64, CV_8UC1, cv::Scalar(90));
  testing::WriteImage(moon + "/images/render/render0002.png", grey);
  testing::WriteImage(moon + "/images/ground/ground0002.png",
                      BlockMask(64, 32, cv::Rect(0, 0, 64, 8), 1));
  testing::WriteImage(moon + "/images/render/render0003.png", testing::PatternImage(64, 32, 3));
  testing::WriteImage(moon + "/images/ground/ground0004.png",
                      BlockMask(64, 32, cv::Rect(0, 0, 8, 8), 255));
  testing::WriteImage(moon + "/images/render/render0005.png", testing::PatternImage(64, 32, 5));
  testing::WriteImage(moon + "/images/ground/ground0005.png", cv::Mat::zeros(32, 64, CV_8UC1));

  DatasetOptions options = MoonOptions(dir.path(), "moon", 16);
  options.validation_fraction = 0.0;
  auto d = LoadDataset(options);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_THAT(d->train_names,
              ElementsAre("images/render/render0001.png", "images/render/render0002.png",
                          "images/render/render0005.png"));
  EXPECT_EQ(d->summary.images_found, 4);
  EXPECT_EQ(d->summary.masks_found, 4);
  ASSERT_EQ(d->summary.unpaired.size(), 2u);
  EXPECT_THAT(d->summary.unpaired[0],
              HasSubstr("images/render/render0003.png: no mask for frame 3"));
  EXPECT_THAT(d->summary.unpaired[1],
              HasSubstr("images/ground/ground0004.png: no render for frame 4"));
  EXPECT_EQ(d->summary.empty_masks, 1);
  EXPECT_THAT(d->summary.empty_mask_examples, ElementsAre("images/ground/ground0005.png"));
  EXPECT_EQ(d->summary.image_sizes.at("64x32"), 3);

  const torch::Tensor masks = d->split.train.targets;
  // Frame 1: the left half is rock (0/255 mask).
  EXPECT_EQ(masks[0].sum().item<int64_t>(), 8 * 16);
  EXPECT_EQ(masks[0][5][3].item<int>(), 1);
  EXPECT_EQ(masks[0][5][12].item<int>(), 0);
  // Frame 2: the top quarter is rock (0/1 mask).
  EXPECT_EQ(masks[1].sum().item<int64_t>(), 4 * 16);
  EXPECT_EQ(masks[1][2][10].item<int>(), 1);
  // The grey render has three equal channels.
  const torch::Tensor grey_render = d->split.train.images[1];
  EXPECT_TRUE(torch::equal(grey_render[0], grey_render[2]));
  EXPECT_EQ(grey_render[1][3][3].item<int>(), 90);
}

TEST(MoonLayoutTest, TrainAndValFoldersAndFractionSplit) {
  testing::TempDir dir;
  const std::string moon = dir / "moon";
  for (int i = 1; i <= 6; ++i) {
    const std::string part = i <= 4 ? "train" : "val";
    const std::string frame = "000" + std::to_string(i);
    testing::WriteImage(moon + "/" + part + "/images/render/render" + frame + ".png",
                        testing::PatternImage(20, 20, i));
    testing::WriteImage(moon + "/" + part + "/images/ground/ground" + frame + ".png",
                        BlockMask(20, 20, cv::Rect(0, 0, i, 2), 255));
  }
  auto own = LoadDataset(MoonOptions(dir.path(), "moon", 20));
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_EQ(own->split.train.size(), 4);
  EXPECT_THAT(own->val_names,
              ElementsAre("val/images/render/render0005.png", "val/images/render/render0006.png"));
  EXPECT_EQ(own->split.val.targets[1].sum().item<int64_t>(), 12);

  DatasetOptions options = MoonOptions(dir.path(), "moon", 20);
  options.validation_fraction = 0.5;
  options.validation_fraction_set = true;
  auto pooled = LoadDataset(options);
  ASSERT_TRUE(pooled.ok()) << pooled.status();
  EXPECT_EQ(pooled->split.train.size(), 3);
  EXPECT_EQ(pooled->split.val.size(), 3);
  // Same seed, same split; no item on both sides.
  auto again = LoadDataset(options);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->val_names, pooled->val_names);
  for (const std::string& name : pooled->val_names) {
    EXPECT_EQ(std::count(pooled->train_names.begin(), pooled->train_names.end(), name), 0);
  }
}

TEST(MoonLayoutTest, RefusesOtherTasksAndMissingLayout) {
  testing::TempDir dir;
  std::filesystem::create_directories(dir / "moon/pictures");
  DatasetOptions options = MoonOptions(dir.path(), "moon", 32);
  auto missing = LoadDataset(options);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("images/render"));
  options.task = train::Task::kMultiClassSegmentation;
  auto task = LoadDataset(options);
  ASSERT_FALSE(task.ok());
  EXPECT_EQ(task.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace selene::data
