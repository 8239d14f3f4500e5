// Tests for server/train/mixed_precision.h: what runs in bfloat16 inside an AutocastScope, and
// that the scope leaves the thread as it found it.
#include "server/train/mixed_precision.h"

#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

namespace selene::train {
namespace {

TEST(MixedPrecisionTest, Names) {
  EXPECT_EQ(PrecisionName(Precision::kFloat32), "fp32");
  EXPECT_EQ(PrecisionName(Precision::kBFloat16), "bf16");
}

TEST(MixedPrecisionTest, Bf16ScopeRunsConvolutionsInBfloat16AndGradientsStayFloat32) {
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(3, 4, 3).padding(1));
  const torch::Tensor images = torch::randn({2, 3, 8, 8});
  torch::Tensor output;
  {
    AutocastScope scope(Precision::kBFloat16, torch::kCPU);
    EXPECT_TRUE(at::autocast::is_cpu_enabled());
    output = conv->forward(images);
  }
  EXPECT_EQ(output.scalar_type(), torch::kBFloat16);
  EXPECT_FALSE(at::autocast::is_cpu_enabled());
  output.to(torch::kFloat).sum().backward();
  ASSERT_TRUE(conv->weight.grad().defined());
  EXPECT_EQ(conv->weight.grad().scalar_type(), torch::kFloat);
  EXPECT_EQ(conv->weight.scalar_type(), torch::kFloat);

  // The bfloat16 result is the float32 one to bfloat16's precision (8 bits of mantissa).
  torch::NoGradGuard no_grad;
  const torch::Tensor reference = conv->forward(images);
  EXPECT_EQ(reference.scalar_type(), torch::kFloat);
  EXPECT_LT((output.to(torch::kFloat) - reference).abs().max().item<double>(),
            0.05 * reference.abs().max().item<double>());
}

TEST(MixedPrecisionTest, Fp32ScopeChangesNothing) {
  AutocastScope scope(Precision::kFloat32, torch::kCPU);
  EXPECT_FALSE(at::autocast::is_cpu_enabled());
  EXPECT_EQ(torch::mm(torch::randn({4, 4}), torch::randn({4, 4})).scalar_type(), torch::kFloat);
}

TEST(MixedPrecisionTest, NestedScopesRestoreTheOuterState) {
  {
    AutocastScope outer(Precision::kBFloat16, torch::kCPU);
    {
      AutocastScope inner(Precision::kBFloat16, torch::kCPU);
      EXPECT_TRUE(at::autocast::is_cpu_enabled());
    }
    EXPECT_TRUE(at::autocast::is_cpu_enabled());
    EXPECT_EQ(at::autocast::get_autocast_cpu_dtype(), at::kBFloat16);
    EXPECT_EQ(torch::mm(torch::randn({4, 4}), torch::randn({4, 4})).scalar_type(),
              torch::kBFloat16);
  }
  EXPECT_FALSE(at::autocast::is_cpu_enabled());
}

}  // namespace
}  // namespace selene::train
