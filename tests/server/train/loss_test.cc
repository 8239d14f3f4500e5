// Losses against values worked out by hand (the arithmetic is in the comments), against torch's
// own cross entropy where it is defined, and for gradient flow and option validation.
#include "server/train/loss.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

namespace selene::train {
namespace {

using ::testing::HasSubstr;

constexpr double kTol = 1e-5;
const double kLn2 = std::log(2.0);
const double kLn3 = std::log(3.0);

double Value(const torch::Tensor& t) { return t.item<double>(); }

// Binary case used by several tests: logits [1, 1, 2, 2] = {0, ln3; -ln3, ln3}, so
// sigmoid = {1/2, 3/4; 1/4, 3/4}, against targets {1, 1; 0, 0}.
torch::Tensor BinaryLogits() {
  return torch::tensor({0.0, kLn3, -kLn3, kLn3}, torch::kFloat).view({1, 1, 2, 2});
}
torch::Tensor BinaryTargets(torch::ScalarType type) {
  return torch::tensor({1, 1, 0, 0}, torch::kLong).view({1, 2, 2}).to(type);
}

// Per pixel BCE = -[t ln p + (1 - t) ln(1 - p)]:
//   p=1/2,t=1: ln 2;  p=3/4,t=1: ln(4/3);  p=1/4,t=0: ln(4/3);  p=3/4,t=0: ln 4.
const double kBinaryBce = (kLn2 + 2 * std::log(4.0 / 3.0) + std::log(4.0)) / 4;  // 0.663701

TEST(LossTest, BceOfKnownLogitsForEveryTargetType) {
  LossOptions options;
  options.kind = LossKind::kBCE;
  for (auto type : {torch::kUInt8, torch::kFloat, torch::kLong}) {
    const torch::Tensor loss =
        ComputeLoss(options, Task::kBinarySegmentation, BinaryLogits(), BinaryTargets(type));
    EXPECT_EQ(loss.dim(), 0);
    EXPECT_NEAR(Value(loss), kBinaryBce, kTol) << type;
  }
}

TEST(LossTest, BcePosWeightScalesPositivePixelsOnly) {
  LossOptions options;
  options.kind = LossKind::kBCE;
  options.pos_weight = 2.0;
  // The two positive pixels count twice: (2 ln2 + 2 ln(4/3) + ln(4/3) + ln4) / 4 = 0.937534.
  const double expected = (2 * kLn2 + 3 * std::log(4.0 / 3.0) + std::log(4.0)) / 4;
  const torch::Tensor loss =
      ComputeLoss(options, Task::kBinarySegmentation, BinaryLogits(), BinaryTargets(torch::kUInt8));
  EXPECT_NEAR(Value(loss), expected, kTol);
}

TEST(LossTest, SoftDiceOfTinyMask) {
  // sum(p t) = 1/2 + 3/4 = 5/4, sum p = 9/4, sum t = 2.
  // smooth 1: (2 * 5/4 + 1) / (9/4 + 2 + 1) = 3.5 / 5.25 = 2/3 -> loss 1/3.
  EXPECT_NEAR(Value(SoftDiceLoss(BinaryLogits(), BinaryTargets(torch::kFloat), 1.0)), 1.0 / 3,
              kTol);
  // smooth 0: 2.5 / 4.25 = 10/17 -> loss 7/17.
  EXPECT_NEAR(Value(SoftDiceLoss(BinaryLogits(), BinaryTargets(torch::kUInt8), 0.0)), 7.0 / 17,
              kTol);
  // Targets already [N, 1, H, W] are accepted too.
  EXPECT_NEAR(Value(SoftDiceLoss(BinaryLogits(), BinaryTargets(torch::kLong).unsqueeze(1), 1.0)),
              1.0 / 3, kTol);
}

TEST(LossTest, SoftDiceTreatsTheBatchAsOneVolume) {
  // The same four pixels as two images of 1x2: one volume gives the 1/3 above, whereas the
  // mean of per-image losses would be ((1 - 2.75/3.75) + (1 - 1/2.5)) / 2 = 0.433333.
  const torch::Tensor logits = BinaryLogits().view({2, 1, 1, 2});
  const torch::Tensor targets = BinaryTargets(torch::kFloat).view({2, 1, 2});
  EXPECT_NEAR(Value(SoftDiceLoss(logits, targets, 1.0)), 1.0 / 3, kTol);
}

TEST(LossTest, BceDiceIsTheWeightedSum) {
  LossOptions options;
  options.kind = LossKind::kBCEDice;
  options.bce_weight = 0.3;
  options.dice_weight = 0.7;
  options.dice_smooth = 1.0;
  // 0.3 * 0.663701 + 0.7 * 1/3 = 0.432444.
  const torch::Tensor loss =
      ComputeLoss(options, Task::kBinarySegmentation, BinaryLogits(), BinaryTargets(torch::kUInt8));
  EXPECT_NEAR(Value(loss), 0.3 * kBinaryBce + 0.7 / 3, kTol);

  options.kind = LossKind::kDice;
  EXPECT_NEAR(Value(ComputeLoss(options, Task::kBinarySegmentation, BinaryLogits(),
                                BinaryTargets(torch::kUInt8))),
              1.0 / 3, kTol);
}

// Cross-entropy case with K = 3, chosen so log-softmax is exact:
//   s0 logits {ln2, 0, 0} -> p {1/2, 1/4, 1/4}, target 0
//   s1 logits {0, 0, 0}   -> p {1/3, 1/3, 1/3}, target 2
//   s2 logits {0, ln2, 0} -> p {1/4, 1/2, 1/4}, target 1
//   s3 logits {5, 0, 0}, target -100: ignored
torch::Tensor CeLogits() {
  return torch::tensor({kLn2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, kLn2, 0.0, 5.0, 0.0, 0.0},
                       torch::kFloat)
      .view({4, 3});
}
torch::Tensor CeTargets() { return torch::tensor({0, 2, 1, -100}, torch::kLong); }

// The same four samples as a [1, 3, 2, 2] segmentation map.
torch::Tensor CeLogitsAsImage() { return CeLogits().view({1, 2, 2, 3}).permute({0, 3, 1, 2}); }
torch::Tensor CeTargetsAsImage() { return CeTargets().view({1, 2, 2}); }

// torch's own cross entropy, for the cases where it is defined (not all ignored).
torch::Tensor TorchCe(const torch::Tensor& logits, const torch::Tensor& targets,
                      const std::vector<double>& weights, double smoothing) {
  auto options =
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100).label_smoothing(
          smoothing);
  if (!weights.empty()) options.weight(torch::tensor(weights).to(torch::kFloat));
  return torch::nn::functional::cross_entropy(logits, targets, options);
}

TEST(LossTest, CrossEntropyPlainIgnoresTheIgnoredSample) {
  // (ln2 + ln3 + ln2) / 3 = 0.828302.
  const double expected = (2 * kLn2 + kLn3) / 3;
  EXPECT_NEAR(Value(CrossEntropyLoss(CeLogits(), CeTargets(), {}, 0.0, -100)), expected, kTol);
  EXPECT_NEAR(Value(TorchCe(CeLogits(), CeTargets(), {}, 0.0)), expected, kTol);
}

TEST(LossTest, CrossEntropyClassWeights) {
  // w = {1, 2, 3}: (1 ln2 + 3 ln3 + 2 ln2) / (1 + 3 + 2) = (ln2 + ln3) / 2 = 0.895880.
  const double expected = (kLn2 + kLn3) / 2;
  EXPECT_NEAR(Value(CrossEntropyLoss(CeLogits(), CeTargets(), {1, 2, 3}, 0.0, -100)), expected,
              kTol);
  EXPECT_NEAR(Value(TorchCe(CeLogits(), CeTargets(), {1, 2, 3}, 0.0)), expected, kTol);
}

TEST(LossTest, CrossEntropyLabelSmoothingUnweighted) {
  // e = 0.3: (1 - e) * NLL + (e / K) * mean_i sum_c -ln p_ic.
  //   sum_c -ln p: s0 ln2 + 2 ln4 = 5 ln2; s1 3 ln3; s2 5 ln2 -> mean (10 ln2 + 3 ln3) / 3.
  //   0.7 (2 ln2 + ln3)/3 + 0.1 (10 ln2 + 3 ln3)/3 = (2.4 ln2 + ln3) / 3 = 0.920735.
  const double expected = (2.4 * kLn2 + kLn3) / 3;
  EXPECT_NEAR(Value(CrossEntropyLoss(CeLogits(), CeTargets(), {}, 0.3, -100)), expected, kTol);
  EXPECT_NEAR(Value(TorchCe(CeLogits(), CeTargets(), {}, 0.3)), expected, kTol);
}

TEST(LossTest, CrossEntropyLabelSmoothingWithClassWeightsFollowsPyTorch) {
  // PyTorch weights the smoothing term per class and normalises it by W = sum_i w[y_i] (= 6),
  // like the NLL term. w = {1, 2, 3}, e = 0.3:
  //   sum_c w_c -ln p_c: s0 1 ln2 + 2 ln4 + 3 ln4 = 11 ln2; s1 6 ln3; s2 1 ln4 + 2 ln2 + 3 ln4
  //   = 10 ln2 -> (21 ln2 + 6 ln3) / 6 = 3.5 ln2 + ln3.
  //   0.7 (ln2 + ln3)/2 + 0.1 (3.5 ln2 + ln3) = 0.7 ln2 + 0.45 ln3 = 0.979579.
  const double expected = 0.7 * kLn2 + 0.45 * kLn3;
  EXPECT_NEAR(Value(CrossEntropyLoss(CeLogits(), CeTargets(), {1, 2, 3}, 0.3, -100)), expected,
              kTol);
  EXPECT_NEAR(Value(TorchCe(CeLogits(), CeTargets(), {1, 2, 3}, 0.3)), expected, kTol);
}

TEST(LossTest, CrossEntropyOnSegmentationMapsEqualsPerPixel) {
  const double expected = 0.7 * kLn2 + 0.45 * kLn3;
  EXPECT_NEAR(Value(CrossEntropyLoss(CeLogitsAsImage(), CeTargetsAsImage(), {1, 2, 3}, 0.3, -100)),
              expected, kTol);
  EXPECT_NEAR(Value(TorchCe(CeLogitsAsImage(), CeTargetsAsImage(), {1, 2, 3}, 0.3)), expected,
              kTol);
  // Through ComputeLoss, with a non-default ignore index.
  LossOptions options;
  options.kind = LossKind::kCrossEntropy;
  options.class_weights = {1, 2, 3};
  options.label_smoothing = 0.3;
  options.ignore_index = 255;
  const torch::Tensor targets = CeTargetsAsImage().masked_fill(CeTargetsAsImage() == -100, 255);
  EXPECT_NEAR(
      Value(ComputeLoss(options, Task::kMultiClassSegmentation, CeLogitsAsImage(), targets)),
      expected, kTol);
}

TEST(LossTest, CrossEntropyAllIgnoredIsZeroWithGradient) {
  // torch's mean would be 0/0 = NaN; one unlabelled batch must not poison training.
  const torch::Tensor logits = CeLogits().requires_grad_(true);
  const torch::Tensor targets = torch::full({4}, -100, torch::kLong);
  for (double smoothing : {0.0, 0.3}) {
    const torch::Tensor loss = CrossEntropyLoss(logits, targets, {1, 2, 3}, smoothing, -100);
    EXPECT_EQ(Value(loss), 0.0);
    ASSERT_TRUE(loss.requires_grad());
    loss.backward();
    EXPECT_TRUE(torch::isfinite(logits.grad()).all().item<bool>());
    logits.grad().zero_();
  }
}

// Multi-class Dice case, one 2x2 image, K = 3, ignore 255:
//   a logits {ln2, 0, 0} -> p {1/2, 1/4, 1/4}, target 0
//   b logits {0, ln2, 0} -> p {1/4, 1/2, 1/4}, target 1
//   c logits {0, 0, ln2} -> p {1/4, 1/4, 1/2}, target 1
//   d logits {9, 0, 0}, target 255: masked out of prediction and target
// class 0: I = 1/2, P = 1, T = 1;  class 1: I = 1/2 + 1/4 = 3/4, P = 1, T = 2;
// class 2: T = 0, absent, left out of the mean.
torch::Tensor DiceLogits() {
  return torch::tensor({kLn2, 0.0, 0.0, 0.0, kLn2, 0.0, 0.0, 0.0, kLn2, 9.0, 0.0, 0.0},
                       torch::kFloat)
      .view({1, 2, 2, 3})
      .permute({0, 3, 1, 2})
      .contiguous();
}
torch::Tensor DiceTargets() { return torch::tensor({0, 1, 1, 255}, torch::kLong).view({1, 2, 2}); }

TEST(LossTest, MultiClassDiceMasksIgnoredAndAveragesPresentClasses) {
  // smooth 1: dice0 = (1 + 1)/(2 + 1) = 2/3, dice1 = (1.5 + 1)/(3 + 1) = 5/8;
  // loss = mean(1/3, 3/8) = 17/48 = 0.354167.
  EXPECT_NEAR(Value(MultiClassDiceLoss(DiceLogits(), DiceTargets(), 255, 1.0)), 17.0 / 48, kTol);
  // smooth 0: dice0 = 1/2, dice1 = 1.5/3 = 1/2 -> loss 1/2.
  EXPECT_NEAR(Value(MultiClassDiceLoss(DiceLogits(), DiceTargets(), 255, 0.0)), 0.5, kTol);
}

TEST(LossTest, MultiClassDiceAllIgnoredIsZeroWithFiniteGradient) {
  const torch::Tensor logits = DiceLogits().requires_grad_(true);
  const torch::Tensor targets = torch::full({1, 2, 2}, 255, torch::kLong);
  for (double smooth : {0.0, 1.0}) {
    const torch::Tensor loss = MultiClassDiceLoss(logits, targets, 255, smooth);
    EXPECT_EQ(Value(loss), 0.0);
    loss.backward();
    EXPECT_TRUE(torch::isfinite(logits.grad()).all().item<bool>()) << smooth;
    logits.grad().zero_();
  }
}

TEST(LossTest, CrossEntropyDiceIsTheWeightedSum) {
  LossOptions options;
  options.kind = LossKind::kCrossEntropyDice;
  options.ce_weight = 0.25;
  options.dice_weight = 0.75;
  options.ignore_index = 255;
  options.dice_smooth = 1.0;
  // CE over a, b, c: a -ln(1/2), b -ln(1/2), c -ln(1/4) -> (ln2 + ln2 + 2 ln2)/3 = 4/3 ln2.
  const double ce = 4.0 / 3 * kLn2;
  const torch::Tensor loss =
      ComputeLoss(options, Task::kMultiClassSegmentation, DiceLogits(), DiceTargets());
  EXPECT_NEAR(Value(loss), 0.25 * ce + 0.75 * 17.0 / 48, kTol);
}

TEST(LossTest, GradientsFlowForEveryKind) {
  struct Case {
    LossKind kind;
    Task task;
    torch::Tensor logits, targets;
  };
  const std::vector<Case> cases = {
      {LossKind::kBCE, Task::kBinarySegmentation, BinaryLogits(), BinaryTargets(torch::kUInt8)},
      {LossKind::kDice, Task::kBinarySegmentation, BinaryLogits(), BinaryTargets(torch::kFloat)},
      {LossKind::kBCEDice, Task::kBinarySegmentation, BinaryLogits(), BinaryTargets(torch::kLong)},
      {LossKind::kCrossEntropy, Task::kClassification, CeLogits(), CeTargets()},
      {LossKind::kCrossEntropy, Task::kMultiClassSegmentation, DiceLogits(), DiceTargets()},
      {LossKind::kDice, Task::kMultiClassSegmentation, DiceLogits(), DiceTargets()},
      {LossKind::kCrossEntropyDice, Task::kMultiClassSegmentation, DiceLogits(), DiceTargets()},
  };
  for (const Case& c : cases) {
    LossOptions options;
    options.kind = c.kind;
    options.label_smoothing = c.task == Task::kBinarySegmentation ? 0.0 : 0.1;
    options.ignore_index = c.task == Task::kClassification ? -100 : 255;
    const torch::Tensor logits = c.logits.clone().requires_grad_(true);
    const torch::Tensor loss = ComputeLoss(options, c.task, logits, c.targets);
    ASSERT_TRUE(loss.requires_grad()) << static_cast<int>(c.kind);
    loss.backward();
    ASSERT_TRUE(logits.grad().defined());
    EXPECT_TRUE(torch::isfinite(logits.grad()).all().item<bool>());
    EXPECT_GT(logits.grad().abs().sum().item<double>(), 0.0) << static_cast<int>(c.kind);
  }
}

TEST(LossTest, HalfPrecisionLogitsGiveAFloatLoss) {
  LossOptions options;
  options.kind = LossKind::kCrossEntropy;
  const torch::Tensor loss =
      ComputeLoss(options, Task::kClassification, CeLogits().to(torch::kBFloat16), CeTargets());
  EXPECT_EQ(loss.scalar_type(), torch::kFloat);
  EXPECT_NEAR(Value(loss), (2 * kLn2 + kLn3) / 3, 2e-2);
}

TEST(LossTest, MismatchedShapesThrow) {
  LossOptions options;
  options.kind = LossKind::kBCE;
  EXPECT_THROW(ComputeLoss(options, Task::kBinarySegmentation, BinaryLogits(),
                           torch::zeros({1, 3, 3}, torch::kUInt8)),
               c10::Error);
  options.kind = LossKind::kCrossEntropy;
  EXPECT_THROW(
      ComputeLoss(options, Task::kClassification, CeLogits(), torch::zeros({3}, torch::kLong)),
      c10::Error);
}

// ValidateLoss ---------------------------------------------------------------------------------

std::string ErrorOf(const LossOptions& options, Task task, int64_t num_classes) {
  const Status status = ValidateLoss(options, task, num_classes);
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  return std::string(status.message());
}

TEST(ValidateLossTest, AcceptsTheDefaultsAndEveryFittingKind) {
  LossOptions options;
  EXPECT_TRUE(ValidateLoss(options, Task::kClassification, 10).ok());
  EXPECT_TRUE(ValidateLoss(options, Task::kMultiClassSegmentation, 3).ok());
  for (LossKind kind : {LossKind::kBCE, LossKind::kDice, LossKind::kBCEDice}) {
    options.kind = kind;
    EXPECT_TRUE(ValidateLoss(options, Task::kBinarySegmentation, 1).ok());
  }
  options.kind = LossKind::kBCEDice;
  options.pos_weight = 4;
  EXPECT_TRUE(ValidateLoss(options, Task::kBinarySegmentation, 1).ok());
  options = LossOptions();
  for (LossKind kind : {LossKind::kCrossEntropy, LossKind::kCrossEntropyDice}) {
    options.kind = kind;
    options.class_weights = {1, 0, 2.5};
    options.label_smoothing = 0.1;
    EXPECT_TRUE(ValidateLoss(options, Task::kMultiClassSegmentation, 3).ok());
  }
  options = LossOptions();
  options.kind = LossKind::kDice;
  EXPECT_TRUE(ValidateLoss(options, Task::kMultiClassSegmentation, 3).ok());
}

TEST(ValidateLossTest, RefusesKindsThatDoNotFitTheTask) {
  LossOptions options;
  options.kind = LossKind::kBCE;
  EXPECT_THAT(ErrorOf(options, Task::kClassification, 5),
              HasSubstr("loss.kind: bce does not fit classification"));
  options.kind = LossKind::kDice;
  EXPECT_THAT(ErrorOf(options, Task::kClassification, 5), HasSubstr("loss.kind: dice"));
  options.kind = LossKind::kCrossEntropy;
  EXPECT_THAT(ErrorOf(options, Task::kBinarySegmentation, 1),
              HasSubstr("cross_entropy does not fit binary_segmentation"));
  options.kind = LossKind::kBCEDice;
  EXPECT_THAT(ErrorOf(options, Task::kMultiClassSegmentation, 3),
              HasSubstr("bce_dice does not fit multiclass_segmentation"));
  options.kind = LossKind::kCrossEntropyDice;
  EXPECT_THAT(ErrorOf(options, Task::kClassification, 3), HasSubstr("cross_entropy_dice"));
}

TEST(ValidateLossTest, RefusesBadClassWeights) {
  LossOptions options;
  options.class_weights = {1, 2, 3};
  EXPECT_THAT(ErrorOf(options, Task::kClassification, 5),
              HasSubstr("loss.class_weights: 3 values for 5 classes"));
  options.class_weights = {1, -0.5, 3};
  EXPECT_THAT(ErrorOf(options, Task::kClassification, 3),
              HasSubstr("loss.class_weights: value -0.5 at index 1"));
  options.class_weights = {0, 0, 0};
  EXPECT_THAT(ErrorOf(options, Task::kClassification, 3),
              HasSubstr("loss.class_weights: all zero"));
  options.class_weights = {1, std::nan(""), 1};
  EXPECT_THAT(ErrorOf(options, Task::kClassification, 3), HasSubstr("loss.class_weights"));
  options.kind = LossKind::kBCE;
  options.class_weights = {1};
  EXPECT_THAT(ErrorOf(options, Task::kBinarySegmentation, 1),
              HasSubstr("loss.class_weights: 1 values, but bce on binary_segmentation"));
  // Multi-class Dice has no class weights either.
  options.kind = LossKind::kDice;
  options.class_weights = {1, 2, 3};
  EXPECT_THAT(ErrorOf(options, Task::kMultiClassSegmentation, 3),
              HasSubstr("loss.class_weights: 3 values, but dice on multiclass_segmentation"));
}

TEST(ValidateLossTest, RefusesOutOfRangeScalars) {
  LossOptions options;
  const std::vector<std::pair<double, std::string>> smoothings = {
      {-0.1, "-0.1"}, {1.0, "1"}, {1.5, "1.5"}};
  for (const auto& [smoothing, text] : smoothings) {
    options.label_smoothing = smoothing;
    EXPECT_THAT(ErrorOf(options, Task::kClassification, 4),
                HasSubstr("loss.label_smoothing: " + text + " must be in [0, 1)"));
  }
  options = LossOptions();
  options.kind = LossKind::kBCE;
  options.pos_weight = 0;
  EXPECT_THAT(ErrorOf(options, Task::kBinarySegmentation, 1),
              HasSubstr("loss.pos_weight: 0 must be > 0"));
  options = LossOptions();
  options.pos_weight = 3;
  EXPECT_THAT(ErrorOf(options, Task::kClassification, 4),
              HasSubstr("loss.pos_weight: 3 does not apply to cross_entropy (bce only)"));
  options = LossOptions();
  options.kind = LossKind::kDice;
  options.pos_weight = 2;
  EXPECT_THAT(ErrorOf(options, Task::kBinarySegmentation, 1),
              HasSubstr("loss.pos_weight: 2 does not apply to dice"));
  options = LossOptions();
  options.kind = LossKind::kBCE;
  options.label_smoothing = 0.1;
  EXPECT_THAT(ErrorOf(options, Task::kBinarySegmentation, 1),
              HasSubstr("loss.label_smoothing: 0.1 does not apply to bce"));
  options.kind = LossKind::kDice;
  EXPECT_THAT(ErrorOf(options, Task::kMultiClassSegmentation, 3),
              HasSubstr("loss.label_smoothing: 0.1 does not apply to dice"));
  options = LossOptions();
  options.dice_smooth = -1;
  EXPECT_THAT(ErrorOf(options, Task::kClassification, 4), HasSubstr("loss.dice_smooth: -1"));
  options = LossOptions();
  options.kind = LossKind::kBCEDice;
  options.dice_weight = -2;
  EXPECT_THAT(ErrorOf(options, Task::kBinarySegmentation, 1),
              HasSubstr("loss.dice_weight: -2 must be finite and >= 0"));
  options.dice_weight = 0;
  options.bce_weight = 0;
  EXPECT_THAT(ErrorOf(options, Task::kBinarySegmentation, 1), HasSubstr("both 0"));
  options = LossOptions();
  options.kind = LossKind::kCrossEntropyDice;
  options.ce_weight = -1;
  EXPECT_THAT(ErrorOf(options, Task::kMultiClassSegmentation, 3), HasSubstr("loss.ce_weight: -1"));
}

TEST(ValidateLossTest, RefusesFewerThanTwoClasses) {
  LossOptions options;
  EXPECT_THAT(ErrorOf(options, Task::kClassification, 1),
              HasSubstr("needs at least 2 classes, the data has 1"));
}

}  // namespace
}  // namespace selene::train
