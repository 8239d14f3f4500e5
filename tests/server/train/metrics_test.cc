// Metrics against confusion counts worked out by hand (the arithmetic is in the comments), the
// documented edge cases (zero division, empty masks, absent classes, ignored pixels) and
// accumulation across batches.
#include "server/train/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <string>
#include <vector>

namespace selene::train {
namespace {

constexpr double kTol = 1e-9;

// Logits whose argmax is `predictions` (int64 [N, ...]): a one-hot of height 5 moved to dim 1.
torch::Tensor LogitsFor(const torch::Tensor& predictions, int64_t k) {
  torch::Tensor one_hot = torch::one_hot(predictions, k).to(torch::kFloat) * 5;
  return one_hot.movedim(-1, 1).contiguous();
}

torch::Tensor Long(const std::vector<int64_t>& values) {
  return torch::tensor(values, torch::kLong);
}

// Classification ------------------------------------------------------------------------------

// 3x3 confusion (rows truth, columns prediction):
//        p0 p1 p2   support
//   t0    2  1  0   3
//   t1    0  3  0   3
//   t2    1  1  1   3
//   predicted 3  5  1;  correct 2 + 3 + 1 = 6 of 9.
const std::vector<int64_t> kTruth = {0, 0, 0, 1, 1, 1, 2, 2, 2};
const std::vector<int64_t> kPred = {0, 0, 1, 1, 1, 1, 0, 1, 2};

void ExpectThreeClassScores(const ClassificationMetrics& metrics) {
  const MetricValues v = metrics.Compute();
  EXPECT_NEAR(v.at("top1"), 6.0 / 9, kTol);
  EXPECT_EQ(v.count("top5"), 0u);  // K < 5
  // precision = TP / predicted: 2/3, 3/5, 1/1; recall = TP / support: 2/3, 3/3, 1/3.
  EXPECT_NEAR(v.at("precision/cat"), 2.0 / 3, kTol);
  EXPECT_NEAR(v.at("precision/dog"), 3.0 / 5, kTol);
  EXPECT_NEAR(v.at("precision/owl"), 1.0, kTol);
  EXPECT_NEAR(v.at("recall/cat"), 2.0 / 3, kTol);
  EXPECT_NEAR(v.at("recall/dog"), 1.0, kTol);
  EXPECT_NEAR(v.at("recall/owl"), 1.0 / 3, kTol);
  // F1 = 2PR/(P+R): cat 2/3; dog 2(.6)(1)/1.6 = 3/4; owl 2(1)(1/3)/(4/3) = 1/2.
  EXPECT_NEAR(v.at("f1/cat"), 2.0 / 3, kTol);
  EXPECT_NEAR(v.at("f1/dog"), 0.75, kTol);
  EXPECT_NEAR(v.at("f1/owl"), 0.5, kTol);
  // macro = (8/12 + 9/12 + 6/12) / 3 = 23/36.
  EXPECT_NEAR(v.at("macro_f1"), 23.0 / 36, kTol);
}

TEST(ClassificationMetricsTest, ThreeByThreeConfusion) {
  ClassificationMetrics metrics({"cat", "dog", "owl"});
  metrics.Add(LogitsFor(Long(kPred), 3), Long(kTruth));
  const torch::Tensor expected = Long({2, 1, 0, 0, 3, 0, 1, 1, 1}).view({3, 3});
  EXPECT_TRUE(torch::equal(metrics.confusion(), expected)) << metrics.confusion();
  EXPECT_EQ(metrics.confusion().scalar_type(), torch::kLong);
  ExpectThreeClassScores(metrics);
}

TEST(ClassificationMetricsTest, TwoBatchesEqualOneBatchOfTheConcatenation) {
  ClassificationMetrics metrics({"cat", "dog", "owl"});
  const torch::Tensor logits = LogitsFor(Long(kPred), 3);
  const torch::Tensor targets = Long(kTruth);
  // Uneven batches (2 and 7): a mean of per-batch accuracies (1/2 and 5/7) would be 0.607.
  metrics.Add(logits.slice(0, 0, 2), targets.slice(0, 0, 2));
  metrics.Add(logits.slice(0, 2), targets.slice(0, 2));
  ExpectThreeClassScores(metrics);

  metrics.Reset();
  EXPECT_EQ(metrics.confusion().sum().item<int64_t>(), 0);
  metrics.Add(logits, targets);
  ExpectThreeClassScores(metrics);
}

TEST(ClassificationMetricsTest, ClassWithNoSupportAndNoPredictionScoresZero) {
  // sklearn zero_division=0, averaged over all K labels. truth {0,0,1,1}, pred {0,1,1,1}:
  //   c0 P 1/1 R 1/2 F1 2/3; c1 P 2/3 R 2/2 F1 4/5; c2 nothing: P = R = F1 = 0.
  //   macro = (2/3 + 4/5 + 0) / 3 = 22/45.
  ClassificationMetrics metrics({"a", "b", "c"});
  metrics.Add(LogitsFor(Long({0, 1, 1, 1}), 3), Long({0, 0, 1, 1}));
  const MetricValues v = metrics.Compute();
  EXPECT_EQ(v.at("precision/c"), 0.0);
  EXPECT_EQ(v.at("recall/c"), 0.0);
  EXPECT_EQ(v.at("f1/c"), 0.0);
  EXPECT_NEAR(v.at("f1/a"), 2.0 / 3, kTol);
  EXPECT_NEAR(v.at("f1/b"), 0.8, kTol);
  EXPECT_NEAR(v.at("macro_f1"), 22.0 / 45, kTol);
}

TEST(ClassificationMetricsTest, TopFive) {
  // K = 6. Scores rank the classes 0 > 1 > 2 > 3 > 4 > 5 for every sample.
  const torch::Tensor logits =
      torch::tensor({6.0, 5.0, 4.0, 3.0, 2.0, 1.0}, torch::kFloat).repeat({3, 1});
  // Target ranked 1st (top-1 and top-5 hit), 5th (top-5 hit), 6th (miss).
  ClassificationMetrics metrics({"c0", "c1", "c2", "c3", "c4", "c5"});
  metrics.Add(logits, Long({0, 4, 5}));
  MetricValues v = metrics.Compute();
  EXPECT_NEAR(v.at("top1"), 1.0 / 3, kTol);
  EXPECT_NEAR(v.at("top5"), 2.0 / 3, kTol);
  // A second batch: rank 2 (top-5 hit only) -> top1 1/4, top5 3/4.
  metrics.Add(logits.slice(0, 0, 1), Long({1}));
  v = metrics.Compute();
  EXPECT_NEAR(v.at("top1"), 1.0 / 4, kTol);
  EXPECT_NEAR(v.at("top5"), 3.0 / 4, kTol);
}

TEST(ClassificationMetricsTest, IgnoredTargetsAreNotCounted) {
  ClassificationMetrics metrics({"c0", "c1", "c2", "c3", "c4", "c5"});
  const torch::Tensor logits =
      torch::tensor({6.0, 5.0, 4.0, 3.0, 2.0, 1.0}, torch::kFloat).repeat({3, 1});
  metrics.Add(logits, Long({0, -100, 2}));
  const MetricValues v = metrics.Compute();
  EXPECT_EQ(metrics.confusion().sum().item<int64_t>(), 2);
  EXPECT_NEAR(v.at("top1"), 0.5, kTol);
  EXPECT_NEAR(v.at("top5"), 1.0, kTol);
}

TEST(ClassificationMetricsTest, NamesFromLogitsWhenNoneGivenAndNaNWhenEmpty) {
  ClassificationMetrics metrics({});
  EXPECT_TRUE(std::isnan(metrics.Compute().at("top1")));
  metrics.Add(LogitsFor(Long({1, 0}), 2), Long({1, 1}));
  const MetricValues v = metrics.Compute();
  EXPECT_NEAR(v.at("recall/1"), 0.5, kTol);
  EXPECT_NEAR(v.at("precision/1"), 1.0, kTol);
  EXPECT_THROW(metrics.Add(LogitsFor(Long({1}), 3), Long({1})), c10::Error);
}

// Binary segmentation -------------------------------------------------------------------------

// Six pixels, logits {3, 1, -2; -1, 3, -3} (sigmoid .953 .731 .119; .269 .953 .047),
// truth {1, 0, 0; 1, 1, 0}.
torch::Tensor BinaryLogits() {
  return torch::tensor({3.0, 1.0, -2.0, -1.0, 3.0, -3.0}, torch::kFloat).view({1, 1, 2, 3});
}
torch::Tensor BinaryTruth(torch::ScalarType type) {
  return Long({1, 0, 0, 1, 1, 0}).view({1, 2, 3}).to(type);
}

TEST(BinarySegmentationMetricsTest, DiceIouAccuracyAtHalf) {
  // Threshold 0.5: pred {1,1,0; 0,1,0} -> TP 2 (pixels 0, 4), FP 1, FN 1, TN 2.
  // dice = 2*2 / (4 + 1 + 1) = 2/3; iou = 2 / 4; accuracy = 4 / 6.
  for (auto type : {torch::kUInt8, torch::kFloat, torch::kLong}) {
    BinarySegmentationMetrics metrics;
    metrics.Add(BinaryLogits(), BinaryTruth(type));
    const MetricValues v = metrics.Compute();
    EXPECT_NEAR(v.at("dice"), 2.0 / 3, kTol) << type;
    EXPECT_NEAR(v.at("iou"), 0.5, kTol);
    EXPECT_NEAR(v.at("pixel_accuracy"), 4.0 / 6, kTol);
  }
}

TEST(BinarySegmentationMetricsTest, ThresholdIsOnTheSigmoid) {
  // Threshold 0.8: sigmoid(1) = .731 drops out -> pred {1,0,0; 0,1,0}: TP 2, FP 0, FN 1, TN 3.
  // dice = 4/5, iou = 2/3, accuracy = 5/6.
  BinarySegmentationMetrics metrics(0.8);
  metrics.Add(BinaryLogits(), BinaryTruth(torch::kUInt8).unsqueeze(1));
  const MetricValues v = metrics.Compute();
  EXPECT_NEAR(v.at("dice"), 0.8, kTol);
  EXPECT_NEAR(v.at("iou"), 2.0 / 3, kTol);
  EXPECT_NEAR(v.at("pixel_accuracy"), 5.0 / 6, kTol);
}

TEST(BinarySegmentationMetricsTest, EmptyTruthAndEmptyPredictionScoreOne) {
  BinarySegmentationMetrics metrics;
  EXPECT_TRUE(std::isnan(metrics.Compute().at("dice")));  // nothing counted yet
  metrics.Add(torch::full({2, 1, 3, 3}, -4.0), torch::zeros({2, 3, 3}, torch::kUInt8));
  MetricValues v = metrics.Compute();
  EXPECT_EQ(v.at("dice"), 1.0);
  EXPECT_EQ(v.at("iou"), 1.0);
  EXPECT_EQ(v.at("pixel_accuracy"), 1.0);
  // One false positive pixel anywhere in the pass makes it 0.
  metrics.Add(torch::full({1, 1, 1, 1}, 4.0), torch::zeros({1, 1, 1}, torch::kUInt8));
  v = metrics.Compute();
  EXPECT_EQ(v.at("dice"), 0.0);
  EXPECT_EQ(v.at("iou"), 0.0);
  EXPECT_NEAR(v.at("pixel_accuracy"), 18.0 / 19, kTol);
}

TEST(BinarySegmentationMetricsTest, TwoBatchesEqualOneBatchOfTheConcatenation) {
  // Batch A: the six pixels above (TP 2 FP 1 FN 1 TN 2); batch B: empty truth, empty prediction
  // (TN 6). Per-batch mean Dice would be (2/3 + 1) / 2; pooled counts keep 2/3.
  const torch::Tensor logits_b = torch::full({1, 1, 2, 3}, -4.0);
  const torch::Tensor truth_b = torch::zeros({1, 2, 3}, torch::kUInt8);
  BinarySegmentationMetrics split, whole;
  split.Add(BinaryLogits(), BinaryTruth(torch::kUInt8));
  split.Add(logits_b, truth_b);
  whole.Add(torch::cat({BinaryLogits(), logits_b}),
            torch::cat({BinaryTruth(torch::kUInt8), truth_b}));
  EXPECT_EQ(split.Compute(), whole.Compute());
  EXPECT_NEAR(split.Compute().at("dice"), 2.0 / 3, kTol);
  EXPECT_NEAR(split.Compute().at("pixel_accuracy"), 10.0 / 12, kTol);
  split.Reset();
  EXPECT_TRUE(std::isnan(split.Compute().at("pixel_accuracy")));
}

// Multi-class segmentation ------------------------------------------------------------------

// One 2x3 image, K = 3 {bg, road, car}, ignore 255:
//   truth {0, 0, 1; 1, 255, 255}
//   pred  {0, 1, 1; 1,   2,   0}   (the prediction under ignored pixels must not count)
// bg: TP 1, support 2, predicted 1 -> dice 2/3, iou 1/2
// road: TP 2, support 2, predicted 3 -> dice 4/5, iou 2/3
// car: nowhere once ignored pixels are out -> NaN, left out of the means.
torch::Tensor SegTruth() { return Long({0, 0, 1, 1, 255, 255}).view({1, 2, 3}); }
torch::Tensor SegLogits() { return LogitsFor(Long({0, 1, 1, 1, 2, 0}).view({1, 2, 3}), 3); }

void ExpectSegScores(const MetricValues& v) {
  EXPECT_NEAR(v.at("pixel_accuracy"), 3.0 / 4, kTol);
  EXPECT_NEAR(v.at("dice/bg"), 2.0 / 3, kTol);
  EXPECT_NEAR(v.at("iou/bg"), 0.5, kTol);
  EXPECT_NEAR(v.at("dice/road"), 0.8, kTol);
  EXPECT_NEAR(v.at("iou/road"), 2.0 / 3, kTol);
  EXPECT_TRUE(std::isnan(v.at("dice/car")));
  EXPECT_TRUE(std::isnan(v.at("iou/car")));
  // mean_dice = (2/3 + 4/5) / 2 = 11/15; mean_iou = (1/2 + 2/3) / 2 = 7/12.
  EXPECT_NEAR(v.at("mean_dice"), 11.0 / 15, kTol);
  EXPECT_NEAR(v.at("mean_iou"), 7.0 / 12, kTol);
}

TEST(MultiClassSegmentationMetricsTest, AbsentClassAndIgnoredPixels) {
  MultiClassSegmentationMetrics metrics({"bg", "road", "car"}, 255);
  metrics.Add(SegLogits(), SegTruth());
  const torch::Tensor expected = Long({1, 1, 0, 0, 2, 0, 0, 0, 0}).view({3, 3});
  EXPECT_TRUE(torch::equal(metrics.confusion(), expected)) << metrics.confusion();
  ExpectSegScores(metrics.Compute());
}

TEST(MultiClassSegmentationMetricsTest, ClassOnlyPredictedScoresZeroAndCounts) {
  // Predicting car where truth has none: car dice 0 enters the mean.
  MultiClassSegmentationMetrics metrics({"bg", "road", "car"}, 255);
  metrics.Add(LogitsFor(Long({0, 2}).view({1, 1, 2}), 3), Long({0, 1}).view({1, 1, 2}));
  const MetricValues v = metrics.Compute();
  // bg 1, road 0 (support 1, no TP), car 0 (predicted 1, no TP) -> mean 1/3.
  EXPECT_EQ(v.at("dice/car"), 0.0);
  EXPECT_NEAR(v.at("mean_dice"), 1.0 / 3, kTol);
  EXPECT_NEAR(v.at("mean_iou"), 1.0 / 3, kTol);
}

TEST(MultiClassSegmentationMetricsTest, AllIgnoredPixelsGiveNaN) {
  MultiClassSegmentationMetrics metrics({"bg", "road", "car"}, 255);
  metrics.Add(SegLogits(), torch::full({1, 2, 3}, 255, torch::kLong));
  const MetricValues v = metrics.Compute();
  EXPECT_EQ(metrics.confusion().sum().item<int64_t>(), 0);
  for (const char* key : {"pixel_accuracy", "mean_dice", "mean_iou", "dice/bg", "iou/road"}) {
    EXPECT_TRUE(std::isnan(v.at(key))) << key;
  }
}

TEST(MultiClassSegmentationMetricsTest, TwoBatchesEqualOneBatchOfTheConcatenation) {
  // Second image: truth car on 4 pixels (2 ignored), prediction all car -> car dice 1, iou 1;
  // pooled: pixel accuracy (3 + 4) / (4 + 4) = 7/8, mean_dice (2/3 + 4/5 + 1) / 3.
  const torch::Tensor truth_b = Long({255, 2, 2, 2, 2, 255}).view({1, 2, 3});
  const torch::Tensor logits_b = LogitsFor(torch::full({1, 2, 3}, 2, torch::kLong), 3);
  MultiClassSegmentationMetrics split({"bg", "road", "car"}, 255);
  MultiClassSegmentationMetrics whole({"bg", "road", "car"}, 255);
  split.Add(SegLogits(), SegTruth());
  split.Add(logits_b, truth_b);
  whole.Add(torch::cat({SegLogits(), logits_b}), torch::cat({SegTruth(), truth_b}));
  EXPECT_TRUE(torch::equal(split.confusion(), whole.confusion()));
  const MetricValues v = split.Compute();
  EXPECT_EQ(v, whole.Compute());
  EXPECT_NEAR(v.at("pixel_accuracy"), 7.0 / 8, kTol);
  EXPECT_NEAR(v.at("mean_dice"), (2.0 / 3 + 0.8 + 1.0) / 3, kTol);
  EXPECT_NEAR(v.at("mean_iou"), (0.5 + 2.0 / 3 + 1.0) / 3, kTol);

  split.Reset();
  split.Add(SegLogits(), SegTruth());
  ExpectSegScores(split.Compute());
}

// Factory and direction ----------------------------------------------------------------------

TEST(MakeMetricsTest, PicksTheAccumulatorForTheTask) {
  auto classification = MakeMetrics(Task::kClassification, {"a", "b"}, -100);
  EXPECT_NE(dynamic_cast<ClassificationMetrics*>(classification.get()), nullptr);
  auto binary = MakeMetrics(Task::kBinarySegmentation, {"rock"}, -100);
  EXPECT_NE(dynamic_cast<BinarySegmentationMetrics*>(binary.get()), nullptr);
  auto multi = MakeMetrics(Task::kMultiClassSegmentation, {"bg", "road", "car"}, 255);
  ASSERT_NE(dynamic_cast<MultiClassSegmentationMetrics*>(multi.get()), nullptr);
  // The ignore index reaches the accumulator.
  multi->Add(SegLogits(), SegTruth());
  ExpectSegScores(multi->Compute());
}

TEST(HigherIsBetterTest, LossesAreMinimisedEverythingElseMaximised) {
  EXPECT_FALSE(HigherIsBetter("loss"));
  EXPECT_FALSE(HigherIsBetter("val_loss"));
  EXPECT_FALSE(HigherIsBetter("train_loss"));
  for (const char* name : {"top1", "top5", "macro_f1", "dice", "iou", "mean_dice", "f1/cat"}) {
    EXPECT_TRUE(HigherIsBetter(name)) << name;
  }
}

}  // namespace
}  // namespace selene::train
