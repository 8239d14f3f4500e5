// Tests for models/pixel_shuffle_upsampling.h: the 1x1-conv + pixel-shuffle formulation gives
// the transposed convolution's output and gradients, in both memory layouts, and refuses the
// transposed convolutions it cannot compute.
#include "models/pixel_shuffle_upsampling.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

namespace selene::models {
namespace {

namespace nn = torch::nn;

struct Case {
  int64_t scale;
  bool bias;
  bool channels_last;
};

std::string Name(const Case& c) {
  return "scale " + std::to_string(c.scale) + (c.bias ? ", bias" : ", no bias") +
         (c.channels_last ? ", channels-last" : ", NCHW");
}

TEST(PixelShuffleUpsamplingTest, MatchesTheTransposedConvolutionAndItsGradients) {
  for (const Case& c :
       {Case{2, true, false}, Case{2, false, false}, Case{2, true, true}, Case{3, true, false}}) {
    SCOPED_TRACE(Name(c));
    torch::manual_seed(0);
    nn::ConvTranspose2d transposed(
        nn::ConvTranspose2dOptions(6, 5, c.scale).stride(c.scale).bias(c.bias));
    torch::Tensor input = torch::randn({3, 6, 7, 5});
    if (c.channels_last) input = input.contiguous(torch::MemoryFormat::ChannelsLast);
    const torch::Tensor upstream = torch::randn({3, 5, 7 * c.scale, 5 * c.scale});

    const torch::Tensor x_reference = input.clone().requires_grad_(true);
    const torch::Tensor reference = transposed->forward(x_reference);
    (reference * upstream).sum().backward();
    const torch::Tensor weight_grad = transposed->weight.grad().clone();
    const torch::Tensor bias_grad = c.bias ? transposed->bias.grad().clone() : torch::Tensor();
    transposed->zero_grad();

    const torch::Tensor x = input.clone().requires_grad_(true);
    const torch::Tensor output = PixelShuffleUpsample(transposed, x);
    (output * upstream).sum().backward();

    ASSERT_EQ(output.sizes(), reference.sizes());
    EXPECT_TRUE(torch::allclose(output, reference, 1e-5, 1e-5))
        << "largest difference " << (output - reference).abs().max().item<float>();
    EXPECT_TRUE(torch::allclose(x.grad(), x_reference.grad(), 1e-5, 1e-5));
    EXPECT_TRUE(torch::allclose(transposed->weight.grad(), weight_grad, 1e-4, 1e-5));
    if (c.bias) {
      EXPECT_TRUE(torch::allclose(transposed->bias.grad(), bias_grad, 1e-4, 1e-5));
    }
  }
}

// A transposed convolution with 4 channels in and out, kernel `kernel`, other options default.
nn::ConvTranspose2dOptions Options(torch::ExpandingArray<2> kernel) {
  return nn::ConvTranspose2dOptions(4, 4, kernel);
}

bool Recognised(const nn::ConvTranspose2dOptions& options) {
  return IsPixelShuffleUpsampling(nn::ConvTranspose2d(options));
}

TEST(PixelShuffleUpsamplingTest, RecognisesOnlyNonOverlappingKernels) {
  EXPECT_TRUE(Recognised(Options(2).stride(2)));
  EXPECT_TRUE(Recognised(Options(1)));
  EXPECT_FALSE(Recognised(Options(3).stride(2)));
  EXPECT_FALSE(Recognised(Options(2)));  // stride 1
  EXPECT_FALSE(Recognised(Options({2, 1}).stride({2, 1})));
  EXPECT_FALSE(Recognised(Options(2).stride(2).padding(1)));
  EXPECT_FALSE(Recognised(Options(2).stride(2).output_padding(1)));
  EXPECT_FALSE(Recognised(Options(2).stride(2).groups(2)));

  nn::ConvTranspose2d overlapping(nn::ConvTranspose2dOptions(4, 4, 3).stride(2));
  EXPECT_THROW(PixelShuffleUpsample(overlapping, torch::randn({1, 4, 3, 3})), c10::Error);
}

}  // namespace
}  // namespace selene::models
