#include "server/train/optimization.h"

#include <gtest/gtest.h>

#include <cmath>

namespace selene::train {
namespace {

TEST(LrScheduleTest, ConstantIsOne) {
  LrSchedule schedule({}, 5);
  for (int64_t epoch = 0; epoch < 5; ++epoch) EXPECT_DOUBLE_EQ(schedule.Factor(epoch, 0, 10), 1.0);
}

TEST(LrScheduleTest, StepMultipliesByGammaEveryStepSize) {
  ScheduleOptions options;
  options.kind = ScheduleKind::kStep;
  options.step_size = 3;
  options.gamma = 0.5;
  LrSchedule schedule(options, 10);
  EXPECT_DOUBLE_EQ(schedule.Factor(2, 0, 1), 1.0);
  EXPECT_DOUBLE_EQ(schedule.Factor(3, 0, 1), 0.5);
  EXPECT_DOUBLE_EQ(schedule.Factor(6, 0, 1), 0.25);
}

TEST(LrScheduleTest, CosineGoesFromOneToMinFactorAfterWarmup) {
  ScheduleOptions options;
  options.kind = ScheduleKind::kCosine;
  options.warmup_epochs = 2;
  options.warmup_start_factor = 0.1;
  options.min_factor = 0.2;
  LrSchedule schedule(options, 8);  // cosine over epochs 2..7, a span of 6
  // Warm-up is linear per step: epoch 0 step 0 starts at 0.1; halfway through (epoch 1 step 0
  // of 2 warm-up epochs) it is 0.1 + 0.9 * 0.5.
  EXPECT_DOUBLE_EQ(schedule.Factor(0, 0, 4), 0.1);
  EXPECT_DOUBLE_EQ(schedule.Factor(1, 0, 4), 0.55);
  EXPECT_DOUBLE_EQ(schedule.Factor(2, 0, 4), 1.0);
  EXPECT_NEAR(schedule.Factor(5, 0, 4), 0.6, 1e-12);  // halfway: (1 + 0.2) / 2
  // Last epoch: 0.2 + 0.8 * (1 + cos(5/6 pi)) / 2, still above the floor.
  EXPECT_NEAR(schedule.Factor(7, 0, 4), 0.2 + 0.4 * (1 - std::sqrt(3.0) / 2), 1e-12);
}

TEST(LrScheduleTest, PlateauCutsAfterPatienceAndStateRoundTrips) {
  ScheduleOptions options;
  options.kind = ScheduleKind::kReduceOnPlateau;
  options.plateau_patience = 1;
  options.gamma = 0.5;
  LrSchedule schedule(options, 10);
  schedule.EndEpoch(0.50, /*higher_is_better=*/true);  // best
  schedule.EndEpoch(0.50, true);                       // 1 bad epoch: within patience
  EXPECT_DOUBLE_EQ(schedule.Factor(2, 0, 1), 1.0);
  schedule.EndEpoch(0.49, true);  // 2 bad epochs: cut
  EXPECT_DOUBLE_EQ(schedule.Factor(3, 0, 1), 0.5);

  LrSchedule restored(options, 10);
  ASSERT_TRUE(restored.RestoreState(schedule.State()).ok());
  EXPECT_DOUBLE_EQ(restored.Factor(3, 0, 1), 0.5);
  restored.EndEpoch(0.49, true);
  restored.EndEpoch(0.49, true);
  EXPECT_DOUBLE_EQ(restored.Factor(5, 0, 1), 0.25);
  EXPECT_FALSE(restored.RestoreState({1.0}).ok());
}

TEST(OptimizationTest, ValidationNamesTheField) {
  OptimizerOptions optimizer;
  optimizer.learning_rate = 0;
  Status status = ValidateOptimizer(optimizer);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(status.message()).find("optimizer.lr"), std::string::npos);

  ScheduleOptions schedule;
  schedule.kind = ScheduleKind::kStep;
  schedule.step_size = 0;
  EXPECT_NE(std::string(ValidateSchedule(schedule).message()).find("schedule.step_size"),
            std::string::npos);
}

// One step on loss = x (gradient 1) from x = 1, checked against each optimizer's update rule.
double OneStep(OptimizerOptions options, int steps = 1) {
  torch::Tensor x = torch::ones({1}, torch::requires_grad());
  auto optimizer = MakeOptimizer(options, {{"x", {x}, 1.0}});
  for (int i = 0; i < steps; ++i) {
    optimizer->zero_grad();
    x.sum().backward();
    optimizer->step();
  }
  return x.item<double>();
}

TEST(OptimizationTest, EachKindFollowsItsUpdateRule) {
  OptimizerOptions sgd;
  sgd.kind = OptimizerKind::kSGD;
  sgd.learning_rate = 0.1;
  sgd.momentum = 0.9;
  // Plain momentum, two steps: buf = 1 then 1.9; x = 1 - 0.1 - 0.19.
  EXPECT_NEAR(OneStep(sgd, 2), 0.71, 1e-6);
  sgd.nesterov = true;
  // Nesterov, one step: buf = 1, update = g + 0.9 * buf = 1.9; x = 1 - 0.19.
  EXPECT_NEAR(OneStep(sgd), 0.81, 1e-6);

  OptimizerOptions adam;
  adam.kind = OptimizerKind::kAdam;
  adam.learning_rate = 0.01;
  adam.weight_decay = 0.5;
  // Adam's first step moves by lr whatever the (L2-augmented) gradient: 1 - 0.01.
  EXPECT_NEAR(OneStep(adam), 0.99, 1e-6);
  adam.kind = OptimizerKind::kAdamW;
  // AdamW decays the weight itself first: 1 * (1 - 0.01 * 0.5) - 0.01.
  EXPECT_NEAR(OneStep(adam), 0.985, 1e-6);
}

TEST(OptimizationTest, GroupsGetScaledLearningRates) {
  torch::Tensor a = torch::ones({1}, torch::requires_grad());
  torch::Tensor b = torch::ones({1}, torch::requires_grad());
  OptimizerOptions options;
  options.learning_rate = 0.1;
  auto optimizer = MakeOptimizer(options, {{"decoder", {a}, 1.0}, {"encoder", {b}, 0.1}});
  ASSERT_EQ(optimizer->param_groups().size(), 2u);
  EXPECT_DOUBLE_EQ(optimizer->param_groups()[0].options().get_lr(), 0.1);
  EXPECT_NEAR(optimizer->param_groups()[1].options().get_lr(), 0.01, 1e-12);
  ApplyLearningRate(*optimizer, 0.1, {1.0, 0.1}, 0.5);
  EXPECT_DOUBLE_EQ(optimizer->param_groups()[0].options().get_lr(), 0.05);
  EXPECT_NEAR(optimizer->param_groups()[1].options().get_lr(), 0.005, 1e-12);
}

}  // namespace
}  // namespace selene::train
