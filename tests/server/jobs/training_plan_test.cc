// Tests server/jobs/training_plan.h: the spec's translation into the engine's options end to
// end, and its refusals. The data it loads is tested in training_data_test.cc.
#include "server/jobs/training_plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "spec/json_io.h"
#include "spec/network_builder.h"
#include "tests/testing/tiny_job_specs.h"

namespace selene::jobs {
namespace {

using ::testing::HasSubstr;

v1::JobSpec Parse(const std::string& json) {
  StatusOr<v1::JobSpec> spec = spec::ParseJobSpecJson(json);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

using ::selene::testing::MoonSpec;

// The plan of `spec` as every caller makes it: resolved (validated), then planned.
StatusOr<TrainingPlan> Plan(const v1::JobSpec& spec) {
  SELENE_ASSIGN_OR_RETURN(spec::ResolvedJobSpec resolved, spec::ResolvedJobSpec::Resolve(spec));
  return PlanTraining(resolved);
}

// U-Net base 8, 24 samples of 32x32, 3 epochs of batch 4; no monitor (the default: dice).
const ::selene::testing::MoonSpecOptions kMoon = [] {
  ::selene::testing::MoonSpecOptions moon;
  moon.epochs = 3;
  moon.base_width = 8;
  moon.num_samples = 24;
  moon.monitor = "";
  return moon;
}();

TEST(PlanTrainingTest, MapsTheSpecIntoTrainerOptions) {
  const v1::JobSpec spec = Parse(R"json({
    "task": "classification",
    "model": {"classifier": {"stem_width": 8, "stage_widths": [8, 16, 16, 32],
                             "stage_blocks": [1, 1, 1, 1]}},
    "data": {"kind": "synthetic_shapes", "num_classes": 4, "num_samples": 40, "image_size": 32,
             "normalize_mean": [0.4, 0.4, 0.4]},
    "training": {
      "epochs": 5, "batch_size": 16,
      "optimizer": {"kind": "sgd", "lr": 0.05, "nesterov": true},
      "schedule": {"kind": "step", "step_size": 2, "gamma": 0.5, "warmup_epochs": 1},
      "loss": {"label_smoothing": 0.1, "class_weights": [1, 2, 1, 1]},
      "grad_clip_norm": 1.5,
      "early_stopping": {"enabled": true, "patience": 2},
      "seed": 9, "threads": 3, "precision": "bf16", "channels_last": true
    }
  })json");
  StatusOr<TrainingPlan> plan = Plan(spec);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const train::TrainerOptions& o = plan->trainer;
  EXPECT_EQ(o.task, train::Task::kClassification);
  EXPECT_EQ(o.epochs, 5);
  EXPECT_EQ(o.batch_size, 16);
  EXPECT_EQ(o.optimizer.kind, train::OptimizerKind::kSGD);
  EXPECT_DOUBLE_EQ(o.optimizer.learning_rate, 0.05);
  EXPECT_DOUBLE_EQ(o.optimizer.momentum, 0.9);  // SGD default
  EXPECT_TRUE(o.optimizer.nesterov);
  EXPECT_EQ(o.schedule.kind, train::ScheduleKind::kStep);
  EXPECT_EQ(o.schedule.step_size, 2);
  EXPECT_DOUBLE_EQ(o.schedule.gamma, 0.5);
  EXPECT_EQ(o.schedule.warmup_epochs, 1);
  EXPECT_EQ(o.loss.kind, train::LossKind::kCrossEntropy);
  EXPECT_DOUBLE_EQ(o.loss.label_smoothing, 0.1);
  EXPECT_EQ(o.loss.class_weights, (std::vector<double>{1, 2, 1, 1}));
  EXPECT_DOUBLE_EQ(o.grad_clip_norm, 1.5);
  EXPECT_EQ(o.monitor, "top1");
  EXPECT_TRUE(o.early_stopping.enabled);
  EXPECT_EQ(o.early_stopping.patience, 2);
  EXPECT_EQ(o.seed, 9u);
  EXPECT_TRUE(o.device.is_cpu());
  EXPECT_EQ(o.precision, train::Precision::kBFloat16);
  EXPECT_TRUE(o.channels_last);
  EXPECT_EQ(o.normalization.mean, (std::vector<double>{0.4, 0.4, 0.4}));
  EXPECT_EQ(o.normalization.std, (std::vector<double>{0.25, 0.25, 0.25}));
  EXPECT_TRUE(o.best_checkpoint.empty());  // the run folder's
  EXPECT_TRUE(o.last_checkpoint.empty());
  EXPECT_EQ(plan->threads, 3);

  EXPECT_EQ(plan->spec.network().family, models::Family::kClassifier);
  EXPECT_EQ(plan->spec.network().classifier.num_classes, 4);
  EXPECT_EQ(plan->spec.network().classifier.stage_widths, (std::vector<int64_t>{8, 16, 16, 32}));
  EXPECT_EQ(plan->spec.network().classifier.stage_strides, (std::vector<int64_t>{1, 2, 2, 2}));
  EXPECT_EQ(plan->spec.data().kind, spec::DataKind::kSyntheticShapes);
  EXPECT_EQ(plan->spec.data().num_samples, 40);

  // The checkpoint metadata is the resolved spec, which parses back.
  StatusOr<v1::JobSpec> metadata = spec::ParseJobSpecJson(o.metadata, "metadata");
  ASSERT_TRUE(metadata.ok()) << metadata.status();
  EXPECT_DOUBLE_EQ(metadata->training().optimizer().momentum(), 0.9);
}

TEST(PlanTrainingTest, SegmentationDefaults) {
  StatusOr<TrainingPlan> plan = Plan(MoonSpec(kMoon));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->trainer.task, train::Task::kBinarySegmentation);
  EXPECT_EQ(plan->trainer.loss.kind, train::LossKind::kBCEDice);
  EXPECT_EQ(plan->trainer.monitor, "dice");
  EXPECT_EQ(plan->trainer.precision, train::Precision::kFloat32);
  EXPECT_TRUE(plan->trainer.channels_last);
  EXPECT_EQ(plan->trainer.optimizer.kind, train::OptimizerKind::kAdamW);
  EXPECT_DOUBLE_EQ(plan->trainer.optimizer.learning_rate, 1e-3);
  EXPECT_EQ(plan->spec.network().family, models::Family::kUNet);
  EXPECT_EQ(plan->spec.network().unet.out_channels, 1);
  EXPECT_EQ(plan->spec.network().unet.base_width, 8);
}

TEST(PlanTrainingTest, InvalidSpecIsInvalidArgument) {
  v1::JobSpec spec = MoonSpec(kMoon);
  spec.mutable_training()->set_batch_size(0);
  StatusOr<TrainingPlan> plan = Plan(spec);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(plan.status().message()), HasSubstr("training.batch_size: 0"));
}

TEST(PlanTrainingTest, UnresolvedEncoderJobIsFailedPrecondition) {
  v1::JobSpec spec = MoonSpec(kMoon);
  auto* encoder = spec.mutable_model()->mutable_encoder_unet();
  encoder->set_encoder_mode(v1::ENCODER_MODE_FROZEN);
  encoder->set_encoder_job_id("job-7");
  StatusOr<TrainingPlan> plan = Plan(spec);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(plan.status().message()), HasSubstr("encoder_job_id"));
}

TEST(PlanTrainingTest, MissingCudaIsFailedPrecondition) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "this machine has CUDA";
  v1::JobSpec spec = MoonSpec(kMoon);
  spec.mutable_training()->set_device("cuda:0");
  StatusOr<TrainingPlan> plan = Plan(spec);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(plan.status().message()), HasSubstr("training.device"));
}

TEST(PlanTrainingTest, BuildsTheSpecifiedNetwork) {
  StatusOr<TrainingPlan> plan = Plan(MoonSpec(kMoon));
  ASSERT_TRUE(plan.ok()) << plan.status();
  StatusOr<models::Network> network = spec::BuildNetwork(plan->spec);
  ASSERT_TRUE(network.ok()) << network.status();
  torch::NoGradGuard no_grad;
  (*network)->eval();
  EXPECT_EQ((*network)->forward(torch::zeros({1, 3, 32, 32})).sizes(),
            (std::vector<int64_t>{1, 1, 32, 32}));
}

// The model factory names the job spec's own fields (NetworkSpec::field_prefix "model."), so
// its refusals need no rewriting on the way out.
TEST(PlanTrainingTest, NetworkRefusalsNameTheSpecsFields) {
  v1::JobSpec over = MoonSpec(kMoon);
  over.mutable_model()->set_parameter_budget(1000);
  StatusOr<TrainingPlan> plan = Plan(over);
  ASSERT_TRUE(plan.ok()) << plan.status();
  StatusOr<models::Network> network = spec::BuildNetwork(plan->spec);
  ASSERT_FALSE(network.ok());
  EXPECT_EQ(network.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(network.status().message()),
              HasSubstr("model.parameter_budget: model has "));
  EXPECT_THAT(std::string(network.status().message()), HasSubstr("over the budget of 1,000"));

  over.mutable_model()->set_fit_width_to_budget(true);
  plan = Plan(over);
  ASSERT_TRUE(plan.ok()) << plan.status();
  network = spec::BuildNetwork(plan->spec);
  ASSERT_FALSE(network.ok());
  EXPECT_THAT(std::string(network.status().message()),
              HasSubstr("model.parameter_budget: even the narrowest model (model.unet.base_width "
                        "1) has "));
}

}  // namespace
}  // namespace selene::jobs
