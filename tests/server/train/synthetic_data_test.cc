// Synthetic data sets: determinism by seed, shapes and value ranges, the properties that keep
// them learnable but not trivial, and the train/validation split.
#include "server/train/synthetic_data.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

namespace selene::train {
namespace {

SyntheticMoonOptions Moon(int64_t count, int64_t size, uint64_t seed) {
  SyntheticMoonOptions options;
  options.count = count;
  options.image_size = size;
  options.seed = seed;
  return options;
}

SyntheticShapesOptions Shapes(int64_t count, int64_t classes, int64_t size, uint64_t seed) {
  SyntheticShapesOptions options;
  options.count = count;
  options.num_classes = classes;
  options.image_size = size;
  options.seed = seed;
  return options;
}

// Per-image share of rock pixels, float [N].
torch::Tensor RockFractions(const TensorDataset& data) {
  return data.targets.to(torch::kFloat).mean({1, 2});
}

TEST(SyntheticMoonTest, ShapesTypesAndTask) {
  const TensorDataset data = MakeSyntheticMoon(Moon(6, 48, 3));
  EXPECT_EQ(data.task, Task::kBinarySegmentation);
  EXPECT_EQ(data.class_names, std::vector<std::string>{"rock"});
  EXPECT_EQ(data.size(), 6);
  EXPECT_EQ(data.images.sizes(), (std::vector<int64_t>{6, 3, 48, 48}));
  EXPECT_EQ(data.images.scalar_type(), torch::kUInt8);
  EXPECT_EQ(data.targets.sizes(), (std::vector<int64_t>{6, 48, 48}));
  EXPECT_EQ(data.targets.scalar_type(), torch::kUInt8);
  EXPECT_LE(data.targets.max().item<int64_t>(), 1);
}

TEST(SyntheticMoonTest, DeterministicBySeed) {
  const TensorDataset a = MakeSyntheticMoon(Moon(8, 64, 7));
  const TensorDataset b = MakeSyntheticMoon(Moon(8, 64, 7));
  const TensorDataset c = MakeSyntheticMoon(Moon(8, 64, 8));
  EXPECT_TRUE(torch::equal(a.images, b.images));
  EXPECT_TRUE(torch::equal(a.targets, b.targets));
  EXPECT_FALSE(torch::equal(a.images, c.images));
  EXPECT_FALSE(torch::equal(a.targets, c.targets));
}

// Image i depends on (seed, i) only, not on how many images are made (or how they are chunked).
TEST(SyntheticMoonTest, ImageDoesNotDependOnCount) {
  const TensorDataset few = MakeSyntheticMoon(Moon(5, 64, 11));
  const TensorDataset many = MakeSyntheticMoon(Moon(70, 64, 11));
  EXPECT_TRUE(torch::equal(few.images, many.images.narrow(0, 0, 5)));
  EXPECT_TRUE(torch::equal(few.targets, many.targets.narrow(0, 0, 5)));
  const TensorDataset shapes_few = MakeSyntheticShapes(Shapes(3, 6, 64, 11));
  const TensorDataset shapes_many = MakeSyntheticShapes(Shapes(40, 6, 64, 11));
  EXPECT_TRUE(torch::equal(shapes_few.images, shapes_many.images.narrow(0, 0, 3)));
}

// With more intra-op threads configured, generation moves to a one-thread helper: same images,
// and errors still reach the caller.
TEST(SyntheticMoonTest, SameImagesWithMoreThreads) {
  const int before = torch::get_num_threads();
  const TensorDataset one = MakeSyntheticMoon(Moon(20, 64, 13));
  const TensorDataset one_shapes = MakeSyntheticShapesSegmentation(Shapes(20, 6, 32, 13));
  torch::set_num_threads(2);
  const TensorDataset two = MakeSyntheticMoon(Moon(20, 64, 13));
  const TensorDataset two_shapes = MakeSyntheticShapesSegmentation(Shapes(20, 6, 32, 13));
  EXPECT_THROW(MakeSyntheticShapes(Shapes(10, 13, 64, 1)), c10::Error);
  EXPECT_EQ(torch::get_num_threads(), 2);  // the caller's setting is untouched
  torch::set_num_threads(before);
  EXPECT_TRUE(torch::equal(one.images, two.images));
  EXPECT_TRUE(torch::equal(one.targets, two.targets));
  EXPECT_TRUE(torch::equal(one_shapes.images, two_shapes.images));
  EXPECT_TRUE(torch::equal(one_shapes.targets, two_shapes.targets));
}

TEST(SyntheticMoonTest, RockFractionIsPlausible) {
  const TensorDataset data = MakeSyntheticMoon(Moon(128, 64, 1));
  const torch::Tensor fractions = RockFractions(data);
  const double mean = fractions.mean().item<double>();
  const double median = fractions.median().item<double>();
  EXPECT_GT(mean, 0.03);
  EXPECT_LT(mean, 0.12);
  EXPECT_GT(median, 0.025);
  EXPECT_LT(fractions.max().item<double>(), 0.25);
  // Every image has at least some rock to learn from.
  EXPECT_GT(fractions.min().item<double>(), 0.0);
}

TEST(SyntheticMoonTest, LooksLikeLunarTerrain) {
  const TensorDataset data = MakeSyntheticMoon(Moon(64, 64, 5));
  const torch::Tensor grey = data.images.to(torch::kFloat).mean(1);  // [N, H, W]
  // Most images show black sky along the top row; some look down with no sky at all.
  const torch::Tensor top = grey.select(1, 0).mean(1);
  const double dark_top = (top < 25).to(torch::kFloat).mean().item<double>();
  EXPECT_GT(dark_top, 0.6);
  EXPECT_LT(dark_top, 1.0);
  // Near-grey: channel means within a few percent of each other.
  const torch::Tensor channel = data.images.to(torch::kFloat).mean({0, 2, 3});
  EXPECT_LT((channel.max() / channel.min()).item<double>(), 1.12);
  // Terrain is mid grey, not washed out or black.
  const double ground = grey.select(1, 48).mean().item<double>();
  EXPECT_GT(ground, 50.0);
  EXPECT_LT(ground, 180.0);
}

// Rocks are brighter than the ground on average, but bright craters, patches and slopes and the
// rocks' own dark sides mean no brightness threshold segments them.
TEST(SyntheticMoonTest, BrightnessAloneDoesNotFindRocks) {
  const TensorDataset data = MakeSyntheticMoon(Moon(64, 64, 2));
  const torch::Tensor grey = data.images.to(torch::kFloat).mean(1);
  const torch::Tensor rock = data.targets.to(torch::kBool);
  EXPECT_GT(grey.masked_select(rock).mean().item<double>(),
            grey.masked_select(~rock).mean().item<double>());
  for (int threshold = 60; threshold <= 220; threshold += 20) {
    const torch::Tensor predicted = grey > threshold;
    const double tp = (predicted & rock).sum().item<double>();
    const double fp = (predicted & ~rock).sum().item<double>();
    const double fn = (~predicted & rock).sum().item<double>();
    EXPECT_LT(2 * tp / (2 * tp + fp + fn), 0.5) << "threshold " << threshold;
  }
}

TEST(SyntheticMoonTest, RejectsBadOptions) {
  SyntheticMoonOptions options = Moon(2, 64, 1);
  options.min_rocks = 5;
  options.max_rocks = 2;
  EXPECT_THROW(MakeSyntheticMoon(options), c10::Error);
  EXPECT_THROW(MakeSyntheticMoon(Moon(2, 4, 1)), c10::Error);
  EXPECT_EQ(MakeSyntheticMoon(Moon(0, 32, 1)).size(), 0);
}

TEST(SyntheticShapesTest, ShapesTypesAndBalancedClasses) {
  const TensorDataset data = MakeSyntheticShapes(Shapes(60, 6, 32, 1));
  EXPECT_EQ(data.task, Task::kClassification);
  EXPECT_EQ(data.images.sizes(), (std::vector<int64_t>{60, 3, 32, 32}));
  EXPECT_EQ(data.images.scalar_type(), torch::kUInt8);
  EXPECT_EQ(data.targets.sizes(), (std::vector<int64_t>{60}));
  EXPECT_EQ(data.targets.scalar_type(), torch::kLong);
  ASSERT_EQ(data.num_classes(), 6);
  EXPECT_EQ(data.class_names[0], "disc");
  EXPECT_EQ(data.class_names[1], "square");
  EXPECT_EQ(std::set<std::string>(data.class_names.begin(), data.class_names.end()).size(), 6u);
  const torch::Tensor counts = torch::bincount(data.targets, {}, 6);
  EXPECT_TRUE(torch::equal(counts, torch::full({6}, 10, torch::kLong)));
}

TEST(SyntheticShapesTest, DeterministicBySeed) {
  const TensorDataset a = MakeSyntheticShapes(Shapes(24, 12, 64, 4));
  const TensorDataset b = MakeSyntheticShapes(Shapes(24, 12, 64, 4));
  const TensorDataset c = MakeSyntheticShapes(Shapes(24, 12, 64, 5));
  EXPECT_TRUE(torch::equal(a.images, b.images));
  EXPECT_TRUE(torch::equal(a.targets, b.targets));
  EXPECT_FALSE(torch::equal(a.images, c.images));
  EXPECT_EQ(a.num_classes(), 12);
}

TEST(SyntheticShapesTest, RejectsBadClassCounts) {
  EXPECT_THROW(MakeSyntheticShapes(Shapes(10, 13, 64, 1)), c10::Error);
  EXPECT_THROW(MakeSyntheticShapes(Shapes(10, 1, 64, 1)), c10::Error);
  EXPECT_THROW(MakeSyntheticShapesSegmentation(Shapes(10, 13, 64, 1)), c10::Error);
}

// Each palette is shared by two classes: a nearest-centroid classifier on mean colour stays far
// from the accuracy a CNN reaches.
TEST(SyntheticShapesTest, MeanColourDoesNotSeparateClasses) {
  const int64_t classes = 6;
  const TensorDataset data = MakeSyntheticShapes(Shapes(1200, classes, 32, 9));
  const torch::Tensor colour = data.images.to(torch::kFloat).mean({2, 3});  // [N, 3]
  const torch::Tensor train = colour.narrow(0, 0, 600), test = colour.narrow(0, 600, 600);
  const torch::Tensor train_y = data.targets.narrow(0, 0, 600);
  const torch::Tensor test_y = data.targets.narrow(0, 600, 600);
  std::vector<torch::Tensor> centroids;
  for (int64_t c = 0; c < classes; ++c) {
    centroids.push_back(train.index_select(0, (train_y == c).nonzero().squeeze(1)).mean(0));
  }
  const torch::Tensor distances = torch::cdist(test, torch::stack(centroids));
  const double accuracy = (distances.argmin(1) == test_y).to(torch::kFloat).mean().item<double>();
  EXPECT_LT(accuracy, 0.5);
}

TEST(SyntheticShapesSegmentationTest, LabelsWithinRange) {
  const int64_t classes = 5;
  const TensorDataset data = MakeSyntheticShapesSegmentation(Shapes(20, classes, 48, 2));
  EXPECT_EQ(data.task, Task::kMultiClassSegmentation);
  EXPECT_EQ(data.ignore_index, -100);
  ASSERT_EQ(data.num_classes(), classes + 1);
  EXPECT_EQ(data.class_names[0], "background");
  EXPECT_EQ(data.class_names[1], "disc");
  EXPECT_EQ(data.images.sizes(), (std::vector<int64_t>{20, 3, 48, 48}));
  EXPECT_EQ(data.targets.sizes(), (std::vector<int64_t>{20, 48, 48}));
  EXPECT_EQ(data.targets.scalar_type(), torch::kLong);
  EXPECT_GE(data.targets.min().item<int64_t>(), 0);
  EXPECT_LE(data.targets.max().item<int64_t>(), classes);
  // Every image has background and at least one shape; together all classes appear.
  const torch::Tensor flat = data.targets.flatten(1);
  EXPECT_TRUE((flat == 0).any(1).all().item<bool>());
  EXPECT_TRUE((flat > 0).any(1).all().item<bool>());
  EXPECT_EQ(std::get<0>(torch::_unique(data.targets)).numel(), classes + 1);
}

TEST(SyntheticShapesSegmentationTest, DeterministicBySeed) {
  const TensorDataset a = MakeSyntheticShapesSegmentation(Shapes(10, 6, 32, 3));
  const TensorDataset b = MakeSyntheticShapesSegmentation(Shapes(10, 6, 32, 3));
  const TensorDataset c = MakeSyntheticShapesSegmentation(Shapes(10, 6, 32, 4));
  EXPECT_TRUE(torch::equal(a.images, b.images));
  EXPECT_TRUE(torch::equal(a.targets, b.targets));
  EXPECT_FALSE(torch::equal(a.targets, c.targets));
}

// A data set whose label is the image's own index, so splits can be traced.
TensorDataset Indexed(int64_t n) {
  TensorDataset data;
  data.task = Task::kMultiClassSegmentation;
  data.class_names = {"a", "b"};
  data.ignore_index = 255;
  data.images = torch::arange(n, torch::kLong).to(torch::kUInt8).view({n, 1, 1, 1});
  data.targets = torch::arange(n, torch::kLong);
  return data;
}

std::vector<int64_t> Ids(const TensorDataset& part) {
  const torch::Tensor t = part.targets.contiguous();
  return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
}

TEST(SplitDatasetTest, DisjointCoveringAndStable) {
  const TensorDataset data = Indexed(100);
  const TrainValSplit split = SplitDataset(data, 0.2, 42);
  EXPECT_EQ(split.val.size(), 20);
  EXPECT_EQ(split.train.size(), 80);
  std::vector<int64_t> all = Ids(split.train);
  const std::vector<int64_t> val = Ids(split.val);
  all.insert(all.end(), val.begin(), val.end());
  std::sort(all.begin(), all.end());
  std::vector<int64_t> expected(100);
  for (int64_t i = 0; i < 100; ++i) expected[i] = i;
  EXPECT_EQ(all, expected);  // no overlap, nothing lost
  // Images travel with their targets.
  EXPECT_TRUE(torch::equal(split.val.images.flatten().to(torch::kLong), split.val.targets));
  // The split is random but fixed by the seed.
  EXPECT_EQ(Ids(SplitDataset(data, 0.2, 42).val), val);
  EXPECT_NE(Ids(SplitDataset(data, 0.2, 43).val), val);
  std::vector<int64_t> first_twenty(expected.begin(), expected.begin() + 20);
  std::vector<int64_t> last_twenty(expected.end() - 20, expected.end());
  EXPECT_NE(val, first_twenty);
  EXPECT_NE(val, last_twenty);
  for (const TensorDataset* part : {&split.train, &split.val}) {
    EXPECT_EQ(part->task, data.task);
    EXPECT_EQ(part->class_names, data.class_names);
    EXPECT_EQ(part->ignore_index, 255);
  }
}

TEST(SplitDatasetTest, EdgeFractions) {
  const TensorDataset data = Indexed(10);
  EXPECT_EQ(SplitDataset(data, 0.0, 1).val.size(), 0);
  EXPECT_EQ(SplitDataset(data, 0.0, 1).train.size(), 10);
  // A requested validation set is never empty, and training keeps at least one image.
  EXPECT_EQ(SplitDataset(data, 0.01, 1).val.size(), 1);
  EXPECT_EQ(SplitDataset(data, 0.99, 1).train.size(), 1);
  EXPECT_THROW(SplitDataset(data, 1.0, 1), c10::Error);
  EXPECT_THROW(SplitDataset(data, -0.1, 1), c10::Error);
}

}  // namespace
}  // namespace selene::train
