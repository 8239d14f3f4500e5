// Tests server/jobs/memory_estimate.h: the estimate grows with batch, image size and width, the
// optimizer and a frozen encoder change what is counted, the decoded data set follows its kind,
// absurd specs give huge finite numbers (never an overflow), and the demo is far under 1 GiB.
#include "server/jobs/memory_estimate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "spec/json_io.h"
#include "spec/overrides.h"
#include "spec/validation.h"
#include "tests/testing/tiny_job_specs.h"

namespace selene::jobs {
namespace {

using ::testing::HasSubstr;

constexpr double kGiB = 1024.0 * 1024 * 1024;

v1::JobSpec Spec(const std::string& json) {
  StatusOr<v1::JobSpec> spec = spec::ParseJobSpecJson(json);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

using ::selene::testing::MoonSpec;
using ::selene::testing::MustResolve;

// The moon spec the numbers below are computed for: U-Net base 16, 512 samples of 64x64,
// batch 16 (epochs and monitor unset: the estimate does not depend on them).
const ::selene::testing::MoonSpecOptions kMoon = [] {
  ::selene::testing::MoonSpecOptions moon;
  moon.epochs = 0;
  moon.base_width = 16;
  moon.num_samples = 512;
  moon.image_size = 64;
  moon.batch_size = 16;
  moon.monitor = "";
  return moon;
}();

void Set(v1::JobSpec& spec, const std::string& assignment) {
  Status status = spec::ApplyOverride(&spec, assignment);
  ASSERT_TRUE(status.ok()) << assignment << ": " << status;
}

MemoryEstimate EstimateWith(const std::string& assignment) {
  v1::JobSpec spec = MoonSpec(kMoon);
  Set(spec, assignment);
  EXPECT_TRUE(spec::ValidateJobSpec(spec).ok()) << spec::ValidateJobSpec(spec);
  return EstimateJobMemory(MustResolve(spec));
}

TEST(EstimateJobMemoryTest, GrowsWithBatchImageSizeAndWidth) {
  const MemoryEstimate base = EstimateJobMemory(MustResolve(MoonSpec(kMoon)));
  EXPECT_GT(base.parameters, 0);
  EXPECT_GT(base.activations, 0);

  const MemoryEstimate batch = EstimateWith("training.batch_size=64");
  EXPECT_NEAR(batch.activations / base.activations, 4.0, 1e-9);  // linear in the batch
  EXPECT_EQ(batch.parameters, base.parameters);
  EXPECT_GT(batch.total(), base.total());

  const MemoryEstimate image = EstimateWith("data.image_size=128");
  EXPECT_NEAR(image.activations / base.activations, 4.0, 1e-9);  // linear in the pixels
  EXPECT_NEAR(image.data / base.data, 4.0, 1e-9);
  EXPECT_EQ(image.parameters, base.parameters);

  const MemoryEstimate wide = EstimateWith("model.unet.base_width=32");
  EXPECT_GT(wide.parameter_count, 3.5 * base.parameter_count);  // ~ width^2
  EXPECT_GT(wide.activations, 1.9 * base.activations);          // ~ width
  EXPECT_EQ(wide.data, base.data);

  const MemoryEstimate samples = EstimateWith("data.num_samples=1024");
  EXPECT_NEAR(samples.data / base.data, 2.0, 1e-9);
}

TEST(EstimateJobMemoryTest, CountsParametersGradientsAndOptimizerStateByKind) {
  const MemoryEstimate adamw = EstimateJobMemory(MustResolve(MoonSpec(kMoon)));
  EXPECT_DOUBLE_EQ(adamw.parameters, 4 * adamw.parameter_count);
  EXPECT_DOUBLE_EQ(adamw.gradients, adamw.parameters);
  EXPECT_DOUBLE_EQ(adamw.optimizer, 2 * adamw.parameters);  // two moments

  const MemoryEstimate momentum = EstimateWith("training.optimizer.kind=sgd");
  EXPECT_DOUBLE_EQ(momentum.optimizer, momentum.parameters);  // default momentum 0.9

  v1::JobSpec plain = MoonSpec(kMoon);
  Set(plain, "training.optimizer.kind=sgd");
  Set(plain, "training.optimizer.momentum=0");
  EXPECT_DOUBLE_EQ(EstimateJobMemory(MustResolve(plain)).optimizer, 0);
}

TEST(EstimateJobMemoryTest, FrozenEncoderHasNoGradientsOrOptimizerState) {
  v1::JobSpec spec = Spec(R"json({
    "task": "binary_segmentation",
    "model": {"encoder_unet": {"encoder_mode": "frozen", "encoder_checkpoint": "c.pt"}},
    "data": {"kind": "synthetic_moon"}
  })json");
  const MemoryEstimate frozen = EstimateJobMemory(MustResolve(spec));
  spec.mutable_model()->mutable_encoder_unet()->set_encoder_mode(v1::ENCODER_MODE_SCRATCH);
  spec.mutable_model()->mutable_encoder_unet()->clear_encoder_checkpoint();
  const MemoryEstimate scratch = EstimateJobMemory(MustResolve(spec));
  EXPECT_EQ(frozen.parameter_count, scratch.parameter_count);
  EXPECT_LT(frozen.gradients, 0.9 * scratch.gradients);
  EXPECT_LT(frozen.optimizer, 0.9 * scratch.optimizer);
  EXPECT_LT(frozen.activations, scratch.activations);  // the encoder runs without autograd
}

TEST(EstimateJobMemoryTest, DataFollowsTheKindAndItsStorage) {
  // Synthetic moon: uint8 RGB images and uint8 masks.
  EXPECT_DOUBLE_EQ(EstimateJobMemory(MustResolve(MoonSpec(kMoon))).data, 512.0 * (3 + 1) * 64 * 64);

  // Multi-class masks are int64.
  const v1::JobSpec shapes = Spec(R"json({
    "task": "multiclass_segmentation", "model": {"unet": {}},
    "data": {"kind": "synthetic_shapes_segmentation", "num_samples": 100, "image_size": 32}
  })json");
  EXPECT_DOUBLE_EQ(EstimateJobMemory(MustResolve(shapes)).data, 100.0 * (3 + 8) * 32 * 32);

  // Tiny ImageNet: 550 images per class, kept at 64 x 64 whatever the model's input size.
  const v1::JobSpec tiny = Spec(R"json({
    "task": "classification", "model": {"classifier": {}},
    "data": {"kind": "tiny_imagenet", "path": "tiny", "num_classes": 10, "image_size": 128}
  })json");
  EXPECT_DOUBLE_EQ(EstimateJobMemory(MustResolve(tiny)).data, 5500.0 * (3 * 64 * 64 + 8));
  EXPECT_DOUBLE_EQ(EstimateJobMemory(MustResolve(tiny), 20).data, 20.0 * (3 * 64 * 64 + 8));

  // MOON: counted when the caller counted its items, else left out and said so.
  const v1::JobSpec moon = Spec(R"json({
    "task": "binary_segmentation", "model": {"unet": {}},
    "data": {"kind": "moon", "path": "moon", "image_size": 256}
  })json");
  const MemoryEstimate unknown = EstimateJobMemory(MustResolve(moon));
  EXPECT_FALSE(unknown.data_known);
  EXPECT_EQ(unknown.data, 0);
  EXPECT_THAT(DescribeEstimate(unknown), HasSubstr("data not counted"));
  const MemoryEstimate counted = EstimateJobMemory(MustResolve(moon), 1000);
  EXPECT_TRUE(counted.data_known);
  EXPECT_DOUBLE_EQ(counted.data, 1000.0 * (3 + 1) * 256 * 256);
}

TEST(EstimateJobMemoryTest, HugeWidthGivesAHugeFiniteEstimate) {
  const MemoryEstimate wide = EstimateWith("model.unet.base_width=100000");
  EXPECT_TRUE(std::isfinite(wide.total()));
  // Level 4 alone: 9 * 1.6e6^2 weights in its second convolution.
  EXPECT_GT(wide.parameter_count, 2e13);
  EXPECT_GT(wide.total(), 100 * 1024 * kGiB);
  EXPECT_THAT(DescribeEstimate(wide), HasSubstr("TiB"));

  // Every bound at once stays finite too.
  v1::JobSpec extreme = MoonSpec(kMoon);
  Set(extreme, "model.unet.base_width=1048576");
  Set(extreme, "data.image_size=4096");
  Set(extreme, "data.num_samples=1000000");
  Set(extreme, "training.batch_size=65536");
  ASSERT_TRUE(spec::ValidateJobSpec(extreme).ok()) << spec::ValidateJobSpec(extreme);
  EXPECT_TRUE(std::isfinite(EstimateJobMemory(MustResolve(extreme)).total()));
  // No spec reaches the estimate unvalidated any more (ResolvedJobSpec); the analytic count
  // under it stays finite for any width.
  models::NetworkSpec absurd = MustResolve(extreme).network();
  absurd.unet.base_width = 4611686018427387904;
  absurd.unet.max_width = 0;
  const double count = CountNetworkParameters(absurd);
  EXPECT_TRUE(std::isfinite(count));
  EXPECT_GT(count, 0);
}

TEST(EstimateJobMemoryTest, DemoConfigIsWellUnderOneGiB) {
  StatusOr<v1::JobSpec> demo = spec::LoadJobSpecFile(SELENE_CONFIGS_DIR "/demo_moon_unet.json");
  ASSERT_TRUE(demo.ok()) << demo.status();
  const MemoryEstimate estimate = EstimateJobMemory(MustResolve(*demo));
  EXPECT_LT(estimate.total(), 0.5 * kGiB) << DescribeEstimate(estimate);
  EXPECT_GT(estimate.total(), 10.0 * 1024 * 1024) << DescribeEstimate(estimate);
}

TEST(EstimateJobMemoryTest, FittedWidthStaysWithinTheBudget) {
  v1::JobSpec spec = MoonSpec(kMoon);
  Set(spec, "model.parameter_budget=200000");
  Set(spec, "model.fit_width_to_budget=true");
  const MemoryEstimate fitted = EstimateJobMemory(MustResolve(spec));
  EXPECT_LE(fitted.parameter_count, 200000);
  EXPECT_GT(fitted.parameter_count, 100000);  // the widest that fits, not the narrowest
}

TEST(FormatBytesTest, PicksABinaryUnit) {
  EXPECT_EQ(FormatBytes(17), "17 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(41.2 * kGiB), "41.2 GiB");
  EXPECT_EQ(FormatBytes(3.0 * 1024 * 1024 * 1024 * 1024 * 1024 * 1024), "3.0 EiB");
  EXPECT_EQ(FormatBytes(1e30), "867361737988.4 EiB");
}

TEST(DescribeEstimateTest, NamesEveryPart) {
  MemoryEstimate estimate;
  estimate.parameters = 1.1 * kGiB;
  estimate.gradients = 1.1 * kGiB;
  estimate.optimizer = 2.2 * kGiB;
  estimate.activations = 37.0 * kGiB;
  estimate.data = 0.9 * kGiB;
  EXPECT_EQ(DescribeEstimate(estimate),
            "about 42.3 GiB (parameters 1.1 GiB, gradients 1.1 GiB, optimizer 2.2 GiB, "
            "activations 37.0 GiB, data 921.6 MiB)");
}

}  // namespace
}  // namespace selene::jobs
