// Tests for models/unet.h: shapes at several sizes, every down/upsampling variant, width caps,
// the default's parameter budget and the summary.
#include "models/unet.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <iostream>
#include <string>
#include <vector>

namespace selene::models {
namespace {

using Sizes = std::vector<int64_t>;

Sizes ShapeOf(const torch::Tensor& tensor) { return tensor.sizes().vec(); }

TEST(UNetTest, DefaultFitsTheTwoAndAHalfMillionBudget) {
  torch::manual_seed(0);
  UNet model;
  const int64_t parameters = CountParameters(*model);
  std::cout << "default UNet: " << parameters << " parameters\n";
  EXPECT_LE(parameters, 2'750'000);  // 2.5M + 10%
  EXPECT_EQ(model->level_widths(), (Sizes{16, 32, 64, 128, 256}));
}

TEST(UNetTest, DefaultOutputMatchesInputAt128And64x96) {
  torch::manual_seed(0);
  UNet model;
  model->eval();
  torch::NoGradGuard no_grad;
  EXPECT_EQ(ShapeOf(model->forward(torch::randn({1, 3, 128, 128}))), (Sizes{1, 1, 128, 128}));
  EXPECT_EQ(ShapeOf(model->forward(torch::randn({2, 3, 64, 96}))), (Sizes{2, 1, 64, 96}));
}

struct Variant {
  Downsample downsample;
  Upsample upsample;
};

TEST(UNetTest, EveryVariantKeepsSizeAndTrains) {
  for (const Variant& variant : {Variant{Downsample::kMaxPool, Upsample::kTransposedConv},
                                 Variant{Downsample::kMaxPool, Upsample::kBilinear},
                                 Variant{Downsample::kStridedConv, Upsample::kTransposedConv},
                                 Variant{Downsample::kStridedConv, Upsample::kBilinear}}) {
    SCOPED_TRACE(std::to_string(static_cast<int>(variant.downsample)) + "/" +
                 std::to_string(static_cast<int>(variant.upsample)));
    torch::manual_seed(0);
    UNetOptions options;
    options.base_width = 4;
    options.out_channels = 5;
    options.downsample = variant.downsample;
    options.upsample = variant.upsample;
    UNet model(options);
    model->train();
    const torch::Tensor logits = model->forward(torch::randn({2, 3, 64, 96}));
    EXPECT_EQ(ShapeOf(logits), (Sizes{2, 5, 64, 96}));
    logits.square().mean().backward();
    for (const auto& item : model->named_parameters()) {
      EXPECT_TRUE(item.value().grad().defined()) << item.key();
    }
    model->eval();
    torch::NoGradGuard no_grad;
    EXPECT_EQ(ShapeOf(model->forward(torch::randn({1, 3, 128, 128}))), (Sizes{1, 5, 128, 128}));
  }
}

TEST(UNetTest, StridedConvDownsamplingAddsNoParameters) {
  UNetOptions options;
  options.base_width = 8;
  UNet pooled(options);
  options.downsample = Downsample::kStridedConv;
  UNet strided(options);
  EXPECT_EQ(CountParameters(*pooled), CountParameters(*strided));
}

TEST(UNetTest, BilinearUpsamplingIsLighterThanTransposed) {
  UNetOptions options;
  options.base_width = 8;
  UNet transposed(options);
  options.upsample = Upsample::kBilinear;
  UNet bilinear(options);
  EXPECT_LT(CountParameters(*bilinear), CountParameters(*transposed));
  EXPECT_EQ(bilinear->named_parameters().find("up0.up.weight")->sizes().vec(),
            (Sizes{8, 16, 1, 1}));
  EXPECT_EQ(transposed->named_parameters().find("up0.up.weight")->sizes().vec(),
            (Sizes{16, 8, 2, 2}));
}

TEST(UNetTest, MaxWidthCapsEveryLevel) {
  torch::manual_seed(0);
  UNetOptions options;
  options.base_width = 4;
  options.max_width = 12;
  UNet model(options);
  EXPECT_EQ(model->level_widths(), (Sizes{4, 8, 12, 12, 12}));
  EXPECT_EQ(ShapeOf(model->forward(torch::randn({1, 3, 32, 32}))), (Sizes{1, 1, 32, 32}));
}

TEST(UNetTest, SizesNotDivisibleBy16StillComeBackWhole) {
  torch::manual_seed(0);
  UNetOptions options;
  options.base_width = 4;
  for (Downsample downsample : {Downsample::kMaxPool, Downsample::kStridedConv}) {
    options.downsample = downsample;
    UNet model(options);
    EXPECT_EQ(ShapeOf(model->forward(torch::randn({1, 3, 40, 52}))), (Sizes{1, 1, 40, 52}));
  }
}

TEST(UNetTest, BottleneckDropoutOnlyActsInTraining) {
  torch::manual_seed(0);
  UNetOptions options;
  options.base_width = 4;
  options.dropout = 0.5;
  UNet model(options);
  const torch::Tensor images = torch::randn({1, 3, 32, 32});
  model->eval();
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(model->forward(images), model->forward(images)));
  model->train();
  EXPECT_EQ(ShapeOf(model->forward(images)), (Sizes{1, 1, 32, 32}));
}

TEST(UNetTest, SummaryRowsFollowTheLevelsAndAddUp) {
  UNet model;
  const std::vector<StageSummary> rows = model->summary();
  std::vector<std::string> names;
  Sizes strides;
  int64_t sum = 0;
  for (const StageSummary& row : rows) {
    names.push_back(row.name);
    strides.push_back(row.stride);
    sum += row.parameters;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"down0", "down1", "down2", "down3", "bottleneck",
                                             "up3", "up2", "up1", "up0", "head"}));
  EXPECT_EQ(strides, (Sizes{1, 2, 4, 8, 16, 8, 4, 2, 1, 1}));
  EXPECT_EQ(sum, CountParameters(*model));
  EXPECT_EQ(rows[4].in_channels, 128);
  EXPECT_EQ(rows[4].out_channels, 256);
  EXPECT_EQ(rows.back().parameters, 16 + 1);
}

}  // namespace
}  // namespace selene::models
