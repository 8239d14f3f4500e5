// Tests for models/network.h: parameter counting and the channels-last layout.
#include "models/network.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/classifier.h"
#include "models/unet.h"

namespace selene::models {
namespace {

TEST(NetworkTest, CountParametersAddsEveryTensorOfEveryChild) {
  torch::nn::Sequential module(torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 4, 3)),
                               torch::nn::BatchNorm2d(4));
  EXPECT_EQ(CountParameters(*module), (4 * 3 * 3 * 3 + 4) + (4 + 4));
}

// Training and serving both switch layouts with UseChannelsLast: the convolution weights become
// NHWC, nothing else changes, and the network computes the same function (fed either layout).
void ExpectChannelsLastKeepsTheFunction(NetworkImpl& network, const torch::Tensor& images) {
  network.eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor reference = network.forward(images);
  const int64_t parameters = CountParameters(network);

  UseChannelsLast(network);
  int64_t convolution_weights = 0;
  for (const auto& item : network.named_parameters()) {
    const torch::Tensor& p = item.value();
    if (p.dim() == 4) {
      ++convolution_weights;
      // (A 1x1 kernel's weight is contiguous in both layouts; a 3x3 one only in one.)
      EXPECT_TRUE(p.is_contiguous(torch::MemoryFormat::ChannelsLast)) << item.key();
    } else {
      EXPECT_TRUE(p.is_contiguous()) << item.key();
    }
  }
  EXPECT_GT(convolution_weights, 0);
  EXPECT_EQ(CountParameters(network), parameters);

  for (const torch::Tensor& input :
       {images, images.contiguous(torch::MemoryFormat::ChannelsLast)}) {
    const torch::Tensor output = network.forward(input);
    ASSERT_EQ(output.sizes(), reference.sizes());
    EXPECT_LT((output - reference).abs().max().item<double>(),
              1e-4 * std::max(1.0, reference.abs().max().item<double>()));
  }
}

TEST(NetworkTest, ChannelsLastUNetComputesTheSameMasks) {
  torch::manual_seed(0);
  UNet unet;
  ExpectChannelsLastKeepsTheFunction(*unet, torch::randn({2, 3, 64, 64}));
}

TEST(NetworkTest, ChannelsLastClassifierComputesTheSameLogits) {
  torch::manual_seed(0);
  ClassifierOptions options;
  options.num_classes = 7;
  Classifier classifier(options);
  ExpectChannelsLastKeepsTheFunction(*classifier, torch::randn({2, 3, 64, 64}));
}

}  // namespace
}  // namespace selene::models
