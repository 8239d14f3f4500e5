// Tests for models/encoder_unet.h: output sizes whatever the encoder's strides, checkpoint-name
// compatibility with Classifier, and the scratch / frozen / fine-tune encoder modes under a real
// optimizer.
#include "models/encoder_unet.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <string>
#include <vector>

namespace selene::models {
namespace {

using Sizes = std::vector<int64_t>;
using Snapshot = std::map<std::string, torch::Tensor>;

Sizes ShapeOf(const torch::Tensor& tensor) { return tensor.sizes().vec(); }

ClassifierOptions SmallEncoder() {
  ClassifierOptions options;
  options.stem_width = 8;
  options.stage_widths = {8, 16, 16, 32};
  options.stage_blocks = {1, 1, 1, 1};
  return options;
}

// Decoder widths 4, 8, 16, 32 against encoder widths 8, 8, 16, 16, 32: stage3 needs an adapter.
EncoderUNetOptions SmallOptions(EncoderMode mode) {
  EncoderUNetOptions options;
  options.encoder = SmallEncoder();
  options.decoder_base_width = 4;
  options.encoder_mode = mode;
  options.unfreeze_epoch = 2;
  return options;
}

// Parameters and buffers (BatchNorm running statistics included), copied.
Snapshot Take(const torch::nn::Module& module) {
  Snapshot snapshot;
  for (const auto& item : module.named_parameters()) snapshot[item.key()] = item.value().clone();
  for (const auto& item : module.named_buffers()) snapshot[item.key()] = item.value().clone();
  return snapshot;
}

std::vector<std::string> Changed(const Snapshot& before, const torch::nn::Module& module) {
  std::vector<std::string> changed;
  for (const auto& [name, tensor] : Take(module)) {
    if (!torch::equal(before.at(name), tensor)) changed.push_back(name);
  }
  return changed;
}

// A few Adam steps over every tensor the model hands to the optimizer, in training mode.
void TrainSteps(EncoderUNetImpl& model, int steps) {
  model.train();
  std::vector<torch::Tensor> parameters;
  for (const ParameterGroup& group : model.parameter_groups()) {
    parameters.insert(parameters.end(), group.parameters.begin(), group.parameters.end());
  }
  torch::optim::Adam optimizer(parameters, torch::optim::AdamOptions(1e-2));
  const torch::Tensor images = torch::randn({4, 3, 32, 32});
  const torch::Tensor targets = (torch::rand({4, 1, 32, 32}) > 0.5).to(torch::kFloat);
  for (int step = 0; step < steps; ++step) {
    optimizer.zero_grad();
    torch::nn::functional::binary_cross_entropy_with_logits(model.forward(images), targets)
        .backward();
    optimizer.step();
  }
}

bool AnyModuleTraining(const torch::nn::Module& module) {
  if (module.is_training()) return true;
  for (const auto& child : module.modules(/*include_self=*/false)) {
    if (child->is_training()) return true;
  }
  return false;
}

TEST(EncoderUNetTest, DefaultOutputMatchesInputAt128And64x96) {
  torch::manual_seed(0);
  EncoderUNet model;
  std::cout << "default EncoderUNet: " << CountParameters(*model) << " parameters ("
            << CountParameters(model->encoder()) << " in the encoder)\n";
  model->eval();
  torch::NoGradGuard no_grad;
  EXPECT_EQ(ShapeOf(model->forward(torch::randn({1, 3, 128, 128}))), (Sizes{1, 1, 128, 128}));
  EXPECT_EQ(ShapeOf(model->forward(torch::randn({2, 3, 64, 96}))), (Sizes{2, 1, 64, 96}));
}

TEST(EncoderUNetTest, DefaultDecoderNeedsNoAdapters) {
  EncoderUNet model;
  EXPECT_EQ(model->decoder_widths(), (Sizes{32, 32, 64, 128, 256, 16}));
  for (const auto& item : model->named_children()) {
    EXPECT_NE(item.key().rfind("adapt_", 0), 0u) << item.key();
  }
  EXPECT_FALSE(model->encoder().has_head());
}

TEST(EncoderUNetTest, EveryStrideAndUpsamplingKeepsSize) {
  for (int64_t stem_stride : {1, 2}) {
    for (Upsample upsample : {Upsample::kBilinear, Upsample::kTransposedConv}) {
      SCOPED_TRACE("stem_stride " + std::to_string(stem_stride) + " upsample " +
                   std::to_string(static_cast<int>(upsample)));
      torch::manual_seed(0);
      EncoderUNetOptions options = SmallOptions(EncoderMode::kScratch);
      options.encoder.stem_stride = stem_stride;
      options.upsample = upsample;
      options.out_channels = 3;
      EncoderUNet model(options);
      const torch::Tensor logits = model->forward(torch::randn({2, 3, 64, 96}));
      EXPECT_EQ(ShapeOf(logits), (Sizes{2, 3, 64, 96}));
      logits.square().mean().backward();
      for (const auto& item : model->named_parameters()) {
        EXPECT_TRUE(item.value().grad().defined()) << item.key();
      }
      torch::NoGradGuard no_grad;
      model->eval();
      EXPECT_EQ(ShapeOf(model->forward(torch::randn({1, 3, 128, 128}))), (Sizes{1, 3, 128, 128}));
    }
  }
}

TEST(EncoderUNetTest, AdaptersOnlyWhereWidthsDiffer) {
  EncoderUNet model(SmallOptions(EncoderMode::kScratch));
  std::vector<std::string> adapters;
  for (const auto& item : model->named_children()) {
    if (item.key().rfind("adapt_", 0) == 0) adapters.push_back(item.key());
  }
  EXPECT_EQ(adapters, (std::vector<std::string>{"adapt_stage3"}));
  EXPECT_EQ(model->named_parameters().find("adapt_stage3.weight")->sizes().vec(),
            (Sizes{32, 16, 1, 1}));
}

TEST(EncoderUNetTest, ClassifierCheckpointTensorsLoadByName) {
  torch::manual_seed(0);
  ClassifierOptions classifier_options = SmallEncoder();
  classifier_options.num_classes = 7;
  Classifier classifier(classifier_options);
  EncoderUNet model(SmallOptions(EncoderMode::kFrozen));

  Snapshot source = Take(*classifier);
  auto target_parameters = model->named_parameters();
  auto target_buffers = model->named_buffers();
  int loaded = 0;
  torch::NoGradGuard no_grad;
  for (const auto& [name, tensor] : source) {
    if (name.rfind("head.", 0) == 0) continue;
    torch::Tensor* target = target_parameters.find("encoder." + name);
    if (target == nullptr) target = target_buffers.find("encoder." + name);
    ASSERT_NE(target, nullptr) << name;
    ASSERT_EQ(target->sizes(), tensor.sizes()) << name;
    target->copy_(tensor);
    ++loaded;
  }
  EXPECT_EQ(loaded, static_cast<int>(Take(model->encoder()).size()));

  classifier->eval();
  model->eval();
  const torch::Tensor images = torch::randn({1, 3, 32, 32});
  const auto expected = classifier->features(images);
  const auto actual = model->encoder().features(images);
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_TRUE(torch::equal(expected[i], actual[i]));
}

TEST(EncoderUNetTest, FrozenEncoderStaysBitIdenticalWhileDecoderTrains) {
  torch::manual_seed(0);
  EncoderUNet model(SmallOptions(EncoderMode::kFrozen));
  const std::vector<ParameterGroup> groups = model->parameter_groups();
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].name, "decoder");
  EXPECT_EQ(
      static_cast<int64_t>(groups[0].parameters.size()),
      static_cast<int64_t>(model->parameters().size() - model->encoder().parameters().size()));
  for (const torch::Tensor& parameter : model->encoder().parameters()) {
    EXPECT_FALSE(parameter.requires_grad());
  }

  const Snapshot encoder_before = Take(model->encoder());
  const Snapshot decoder_before = Take(*model);
  TrainSteps(*model, 3);
  EXPECT_TRUE(model->is_training());
  EXPECT_FALSE(AnyModuleTraining(model->encoder()));
  EXPECT_EQ(Changed(encoder_before, model->encoder()), std::vector<std::string>{});
  const std::vector<std::string> changed = Changed(decoder_before, *model);
  EXPECT_GT(changed.size(), 10u);
  for (const std::string& name : changed) EXPECT_NE(name.rfind("encoder.", 0), 0u) << name;

  model->eval();
  model->train();
  EXPECT_FALSE(AnyModuleTraining(model->encoder()));
}

TEST(EncoderUNetTest, FineTuneEncoderTrainsFromUnfreezeEpoch) {
  torch::manual_seed(0);
  EncoderUNet model(SmallOptions(EncoderMode::kFineTune));
  const std::vector<ParameterGroup> groups = model->parameter_groups();
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].name, "decoder");
  EXPECT_DOUBLE_EQ(groups[0].lr_scale, 1.0);
  EXPECT_EQ(groups[1].name, "encoder");
  EXPECT_DOUBLE_EQ(groups[1].lr_scale, 0.1);
  EXPECT_EQ(groups[1].parameters.size(), model->encoder().parameters().size());

  // One optimizer for the whole run, as the Trainer does, so the encoder group is already in it.
  model->on_epoch_start(0);
  EXPECT_TRUE(model->encoder_frozen());
  const Snapshot before = Take(model->encoder());
  TrainSteps(*model, 2);
  model->on_epoch_start(1);
  TrainSteps(*model, 2);
  EXPECT_EQ(Changed(before, model->encoder()), std::vector<std::string>{});

  model->on_epoch_start(2);
  EXPECT_FALSE(model->encoder_frozen());
  EXPECT_TRUE(model->encoder().is_training());
  TrainSteps(*model, 2);
  const std::vector<std::string> changed = Changed(before, model->encoder());
  auto has = [&](const std::string& name) {
    return std::find(changed.begin(), changed.end(), name) != changed.end();
  };
  EXPECT_TRUE(has("stem.conv.weight"));
  EXPECT_TRUE(has("stem.bn.running_mean"));
  EXPECT_TRUE(has("stage4.0.conv1.weight"));

  // Resuming at an earlier epoch freezes it again.
  model->on_epoch_start(1);
  EXPECT_TRUE(model->encoder_frozen());
  EXPECT_FALSE(AnyModuleTraining(model->encoder()));
}

TEST(EncoderUNetTest, ScratchEncoderTrainsWithTheDecoder) {
  torch::manual_seed(0);
  EncoderUNet model(SmallOptions(EncoderMode::kScratch));
  EXPECT_FALSE(model->encoder_frozen());
  int64_t grouped = 0;
  for (const ParameterGroup& group : model->parameter_groups()) {
    EXPECT_DOUBLE_EQ(group.lr_scale, 1.0);
    grouped += static_cast<int64_t>(group.parameters.size());
  }
  EXPECT_EQ(grouped, static_cast<int64_t>(model->parameters().size()));
  const Snapshot before = Take(model->encoder());
  TrainSteps(*model, 2);
  EXPECT_TRUE(AnyModuleTraining(model->encoder()));
  EXPECT_GT(Changed(before, model->encoder()).size(), 10u);
}

TEST(EncoderUNetTest, SummaryCoversEncoderAndDecoder) {
  for (EncoderUNetOptions options : {EncoderUNetOptions{}, SmallOptions(EncoderMode::kScratch)}) {
    EncoderUNet model(options);
    const std::vector<StageSummary> rows = model->summary();
    std::vector<std::string> names;
    int64_t sum = 0;
    for (const StageSummary& row : rows) {
      names.push_back(row.name);
      sum += row.parameters;
    }
    EXPECT_EQ(names, (std::vector<std::string>{"stem", "stage1", "stage2", "stage3", "stage4",
                                               "up_stage3", "up_stage2", "up_stage1", "up_stem",
                                               "input", "up_input", "head"}));
    EXPECT_EQ(sum, CountParameters(*model));
    EXPECT_EQ(rows[5].stride, 8);
    EXPECT_EQ(rows[8].stride, 2);
    EXPECT_EQ(rows.back().stride, 1);
  }
}

}  // namespace
}  // namespace selene::models
