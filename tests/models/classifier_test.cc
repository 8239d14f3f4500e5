// Tests for models/classifier.h: shapes, features as an encoder, head-less mode, parameter
// names and counts.
#include "models/classifier.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <iostream>
#include <set>
#include <string>
#include <vector>

namespace selene::models {
namespace {

using Sizes = std::vector<int64_t>;

// Narrow and shallow, for tests that are not about the defaults.
ClassifierOptions SmallOptions() {
  ClassifierOptions options;
  options.num_classes = 10;
  options.stem_width = 8;
  options.stage_widths = {8, 16, 16, 32};
  options.stage_blocks = {1, 1, 1, 1};
  return options;
}

Sizes ShapeOf(const torch::Tensor& tensor) { return tensor.sizes().vec(); }

TEST(ClassifierTest, DefaultHasFewerThanFiveMillionParameters) {
  torch::manual_seed(0);
  Classifier model;
  const int64_t parameters = CountParameters(*model);
  std::cout << "default Classifier: " << parameters << " parameters\n";
  EXPECT_LT(parameters, 5'000'000);
  EXPECT_GT(parameters, 1'000'000);  // the ResNet-style net it claims to be, not a stub
}

TEST(ClassifierTest, DefaultLogitsShapeAt128And64x96) {
  torch::manual_seed(0);
  Classifier model;
  model->eval();
  torch::NoGradGuard no_grad;
  EXPECT_EQ(ShapeOf(model->forward(torch::randn({2, 3, 128, 128}))), (Sizes{2, 200}));
  EXPECT_EQ(ShapeOf(model->forward(torch::randn({2, 3, 64, 96}))), (Sizes{2, 200}));
}

TEST(ClassifierTest, FeaturesMatchDeclaredChannelsAndStrides) {
  torch::manual_seed(0);
  Classifier model;
  model->eval();
  EXPECT_EQ(model->feature_channels(), (Sizes{32, 32, 64, 128, 256}));
  EXPECT_EQ(model->feature_strides(), (Sizes{2, 2, 4, 8, 16}));
  torch::NoGradGuard no_grad;
  for (const Sizes& size : {Sizes{128, 128}, Sizes{64, 96}}) {
    const std::vector<torch::Tensor> features =
        model->features(torch::randn({1, 3, size[0], size[1]}));
    ASSERT_EQ(features.size(), 5u);
    for (size_t i = 0; i < features.size(); ++i) {
      const int64_t stride = model->feature_strides()[i];
      EXPECT_EQ(ShapeOf(features[i]),
                (Sizes{1, model->feature_channels()[i], size[0] / stride, size[1] / stride}))
          << "feature " << i;
    }
  }
}

TEST(ClassifierTest, HeadlessBuildsNoHeadAndRefusesForward) {
  torch::manual_seed(0);
  ClassifierOptions options = SmallOptions();
  options.head = false;
  Classifier model(options);
  EXPECT_FALSE(model->has_head());
  for (const auto& item : model->named_parameters()) {
    EXPECT_NE(item.key().rfind("head", 0), 0u) << item.key();
  }
  const torch::Tensor images = torch::randn({2, 3, 64, 64});
  EXPECT_THROW(model->forward(images), c10::Error);
  const std::vector<torch::Tensor> features = model->features(images);
  EXPECT_EQ(ShapeOf(features.back()), (Sizes{2, 32, 4, 4}));
  EXPECT_EQ(model->summary().back().name, "stage4");
}

TEST(ClassifierTest, BottleneckBlocksKeepStageWidths) {
  torch::manual_seed(0);
  ClassifierOptions options = SmallOptions();
  options.block = BlockType::kBottleneck;
  options.stage_widths = {16, 32, 64, 64};
  options.stage_blocks = {2, 1, 1, 1};
  Classifier model(options);
  const std::vector<torch::Tensor> features = model->features(torch::randn({2, 3, 64, 96}));
  EXPECT_EQ(ShapeOf(features[1]), (Sizes{2, 16, 32, 48}));
  EXPECT_EQ(ShapeOf(features[4]), (Sizes{2, 64, 4, 6}));
  EXPECT_EQ(ShapeOf(model->forward(torch::randn({2, 3, 128, 128}))), (Sizes{2, 10}));
  EXPECT_EQ(model->named_parameters().find("stage1.0.conv3.weight")->size(1), 4);
}

TEST(ClassifierTest, ParameterNamesAreStableForCheckpoints) {
  torch::manual_seed(0);
  Classifier model;
  std::set<std::string> names;
  for (const auto& item : model->named_parameters()) names.insert(item.key());
  for (const auto& item : model->named_buffers()) names.insert(item.key());
  for (const char* name :
       {"stem.conv.weight", "stem.bn.weight", "stem.bn.running_mean", "stage1.0.conv1.weight",
        "stage1.1.bn2.weight", "stage2.0.shortcut.conv.weight", "stage2.0.shortcut.bn.running_var",
        "stage4.1.conv2.weight", "head.weight", "head.bias"}) {
    EXPECT_EQ(names.count(name), 1u) << name;
  }
  // Stage 1 keeps the stem's width and stride: no projection shortcut there.
  EXPECT_EQ(names.count("stage1.0.shortcut.conv.weight"), 0u);
}

TEST(ClassifierTest, ResidualBlocksStartAsIdentity) {
  torch::manual_seed(0);
  Classifier model(SmallOptions());
  int zeroed = 0;
  for (const auto& item : model->named_parameters()) {
    const std::string& name = item.key();
    if (name.size() > 10 && name.compare(name.size() - 10, 10, "bn2.weight") == 0) {
      EXPECT_TRUE(torch::equal(item.value(), torch::zeros_like(item.value()))) << name;
      ++zeroed;
    }
  }
  EXPECT_EQ(zeroed, 4);  // one block per stage
}

TEST(ClassifierTest, SummaryRowsAddUpToTotal) {
  torch::manual_seed(0);
  for (bool head : {true, false}) {
    ClassifierOptions options;
    options.head = head;
    Classifier model(options);
    const std::vector<StageSummary> rows = model->summary();
    ASSERT_EQ(rows.size(), head ? 6u : 5u);
    int64_t sum = 0;
    for (const StageSummary& row : rows) sum += row.parameters;
    EXPECT_EQ(sum, CountParameters(*model));
    EXPECT_EQ(rows[0].name, "stem");
    EXPECT_EQ(rows[0].in_channels, 3);
    EXPECT_EQ(rows[2].name, "stage2");
    EXPECT_EQ(rows[2].in_channels, 32);
    EXPECT_EQ(rows[2].out_channels, 64);
    EXPECT_EQ(rows[4].stride, 16);
    if (head) {
      EXPECT_EQ(rows[5].name, "head");
      EXPECT_EQ(rows[5].out_channels, 200);
      EXPECT_EQ(rows[5].parameters, 256 * 200 + 200);
    }
  }
}

TEST(ClassifierTest, StemStrideOneWithDropoutTrains) {
  torch::manual_seed(0);
  ClassifierOptions options = SmallOptions();
  options.stem_stride = 1;
  options.dropout = 0.5;
  Classifier model(options);
  EXPECT_EQ(model->feature_strides(), (Sizes{1, 1, 2, 4, 8}));
  model->train();
  const torch::Tensor logits = model->forward(torch::randn({4, 3, 32, 48}));
  EXPECT_EQ(ShapeOf(logits), (Sizes{4, 10}));
  torch::nn::functional::cross_entropy(logits, torch::tensor({0, 1, 2, 3})).backward();
  for (const auto& item : model->named_parameters()) {
    EXPECT_TRUE(item.value().grad().defined()) << item.key();
  }
}

}  // namespace
}  // namespace selene::models
