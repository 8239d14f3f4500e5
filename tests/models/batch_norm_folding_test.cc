// Tests for models/batch_norm_folding.h and NetworkImpl::fold_batch_norms: a folded network gives
// the unfolded network's outputs (eval mode) within float rounding, for every family and block
// type, in both memory layouts; a folded network refuses to train.
#include "models/batch_norm_folding.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "models/classifier.h"
#include "models/encoder_unet.h"
#include "models/network.h"
#include "models/unet.h"

namespace selene::models {
namespace {

// Trained-looking BatchNorms: statistics and affine parameters away from their initial values
// (at init a BN in eval mode is nearly the identity, and folding it would prove little).
void RandomiseBatchNorms(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (const auto& item : module.named_buffers()) {
    const std::string& name = item.key();
    torch::Tensor value = item.value();
    if (name.size() >= 12 && name.rfind("running_mean") == name.size() - 12) value.normal_(0, 0.5);
    if (name.size() >= 11 && name.rfind("running_var") == name.size() - 11) value.uniform_(0.2, 3);
  }
  for (const auto& child : module.modules(/*include_self=*/true)) {
    if (auto* bn = child->as<torch::nn::BatchNorm2d>()) {
      bn->weight.uniform_(0.5, 1.5);
      bn->bias.normal_(0, 0.3);
    }
  }
}

// Max |folded - reference| relative to the reference's largest magnitude.
double RelativeDifference(const torch::Tensor& folded, const torch::Tensor& reference) {
  return (folded - reference).abs().max().item<double>() /
         std::max(1e-12, reference.abs().max().item<double>());
}

// Output of `network` on `images` before and after folding, in eval mode, optionally with the
// input and the 4-D weights in channels-last layout (as serving runs it).
void ExpectFoldingKeepsOutputs(NetworkImpl& network, const torch::Tensor& images,
                               bool channels_last) {
  RandomiseBatchNorms(network);
  network.eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor reference = network.forward(images);
  const int64_t parameters_before = CountParameters(network);

  network.fold_batch_norms();
  torch::Tensor input = images;
  if (channels_last) {
    UseChannelsLast(network);
    input = images.contiguous(torch::MemoryFormat::ChannelsLast);
  }
  const torch::Tensor folded = network.forward(input);
  ASSERT_EQ(folded.sizes(), reference.sizes());
  EXPECT_LT(RelativeDifference(folded, reference), 1e-4);
  // Folding adds a bias per folded conv, nothing else.
  EXPECT_GT(CountParameters(network), parameters_before);
  // Folding twice changes nothing.
  network.fold_batch_norms();
  EXPECT_LT(RelativeDifference(network.forward(input), folded), 1e-6);
}

TEST(BatchNormFoldingTest, FoldedConvEqualsConvThenBatchNorm) {
  torch::manual_seed(1);
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(3, 8, 3).stride(2).padding(1).bias(false));
  torch::nn::BatchNorm2d bn(8);
  RandomiseBatchNorms(*bn);
  bn->eval();
  const torch::Tensor x = torch::randn({2, 3, 17, 15});
  torch::NoGradGuard no_grad;
  const torch::Tensor reference = bn->forward(conv->forward(x));
  torch::nn::Conv2d folded = FoldBatchNorm(conv, bn);
  ASSERT_TRUE(folded->bias.defined());
  EXPECT_FALSE(folded->weight.requires_grad());
  EXPECT_LT(RelativeDifference(folded->forward(x), reference), 1e-5);
  EXPECT_FALSE(conv->bias.defined());  // the original conv is left as it was
}

TEST(BatchNormFoldingTest, FoldsAConvThatHasABias) {
  torch::manual_seed(2);
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(4, 6, 1));
  torch::nn::BatchNorm2d bn(6);
  RandomiseBatchNorms(*bn);
  bn->eval();
  const torch::Tensor x = torch::randn({1, 4, 5, 5});
  torch::NoGradGuard no_grad;
  EXPECT_LT(RelativeDifference(FoldBatchNorm(conv, bn)->forward(x), bn->forward(conv->forward(x))),
            1e-5);
}

TEST(BatchNormFoldingTest, SequentialKeepsOtherChildrenAndNames) {
  torch::manual_seed(3);
  torch::nn::Sequential sequential(
      {{"conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 4, 3).padding(1).bias(false))},
       {"bn", torch::nn::BatchNorm2d(4)},
       {"relu", torch::nn::ReLU()}});
  RandomiseBatchNorms(*sequential);
  sequential->eval();
  const torch::Tensor x = torch::randn({2, 3, 8, 8});
  torch::NoGradGuard no_grad;
  const torch::Tensor reference = sequential->forward(x);
  torch::nn::Sequential folded = FoldBatchNorms(sequential);
  std::vector<std::string> names;
  for (const auto& child : folded->named_children()) names.push_back(child.key());
  EXPECT_EQ(names, (std::vector<std::string>{"conv", "relu"}));
  EXPECT_LT(RelativeDifference(folded->forward(x), reference), 1e-5);
}

TEST(BatchNormFoldingTest, DefaultUNetKeepsItsOutputs) {
  for (bool channels_last : {false, true}) {
    SCOPED_TRACE(channels_last ? "channels-last" : "contiguous");
    torch::manual_seed(4);
    UNet model;
    ExpectFoldingKeepsOutputs(*model, torch::randn({2, 3, 64, 64}), channels_last);
  }
}

TEST(BatchNormFoldingTest, ClassifierKeepsItsOutputsWithEitherBlock) {
  for (BlockType block : {BlockType::kBasic, BlockType::kBottleneck}) {
    for (bool channels_last : {false, true}) {
      SCOPED_TRACE(std::string(block == BlockType::kBasic ? "basic" : "bottleneck") +
                   (channels_last ? " channels-last" : " contiguous"));
      torch::manual_seed(5);
      ClassifierOptions options;
      options.num_classes = 7;
      options.block = block;
      options.stem_width = 8;
      options.stage_widths = {8, 16, 16, 32};
      Classifier model(options);
      ExpectFoldingKeepsOutputs(*model, torch::randn({3, 3, 32, 32}), channels_last);
    }
  }
}

TEST(BatchNormFoldingTest, EncoderUNetKeepsItsOutputs) {
  torch::manual_seed(6);
  EncoderUNetOptions options;
  options.encoder.stem_width = 8;
  options.encoder.stage_widths = {8, 16, 16, 32};
  options.decoder_base_width = 8;
  options.out_channels = 3;
  EncoderUNet model(options);
  ExpectFoldingKeepsOutputs(*model, torch::randn({2, 3, 32, 48}), /*channels_last=*/true);
}

TEST(BatchNormFoldingTest, FoldedNetworkRefusesToTrain) {
  torch::manual_seed(7);
  UNetOptions options;
  options.base_width = 4;
  UNet unet(options);
  unet->eval();
  unet->fold_batch_norms();
  unet->train();
  EXPECT_THROW(unet->forward(torch::randn({1, 3, 32, 32})), c10::Error);

  ClassifierOptions classifier_options;
  classifier_options.num_classes = 3;
  classifier_options.stem_width = 4;
  classifier_options.stage_widths = {4, 4, 8, 8};
  Classifier classifier(classifier_options);
  classifier->eval();
  classifier->fold_batch_norms();
  classifier->train();
  EXPECT_THROW(classifier->forward(torch::randn({1, 3, 32, 32})), c10::Error);
}

}  // namespace
}  // namespace selene::models
