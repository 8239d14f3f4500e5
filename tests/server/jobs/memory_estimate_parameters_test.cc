// Tests server/jobs/memory_estimate.h's analytic parameter count against the networks models/
// builds: equal for every family and the options that change the layers (block type, stage
// shapes, up-sampling, width caps, stem stride, fitting to a budget). Builds small networks.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "models/factory.h"
#include "models/model_options.h"
#include "server/jobs/memory_estimate.h"

namespace selene::jobs {
namespace {

using models::Family;
using models::NetworkSpec;

int64_t Built(const NetworkSpec& spec) {
  StatusOr<int64_t> count = models::CountSpecParameters(spec);
  EXPECT_TRUE(count.ok()) << count.status();
  return count.ok() ? *count : -1;
}

void ExpectSameCount(const NetworkSpec& spec, const std::string& what) {
  SCOPED_TRACE(what);
  EXPECT_EQ(CountNetworkParameters(spec), static_cast<double>(Built(spec)));
}

models::ClassifierOptions SmallClassifier() {
  models::ClassifierOptions options;
  options.stem_width = 8;
  options.stage_widths = {8, 16, 24, 32};
  options.stage_blocks = {1, 2, 1, 3};
  options.num_classes = 7;
  return options;
}

TEST(CountNetworkParametersTest, UNetMatchesTheBuiltNetwork) {
  NetworkSpec spec;
  spec.family = Family::kUNet;
  spec.unet.base_width = 4;
  ExpectSameCount(spec, "defaults");
  spec.unet.upsample = models::Upsample::kBilinear;
  spec.unet.downsample = models::Downsample::kStridedConv;
  spec.unet.in_channels = 1;
  spec.unet.out_channels = 5;
  ExpectSameCount(spec, "bilinear, strided, 1 in, 5 out");
  spec.unet.max_width = 12;
  spec.unet.upsample = models::Upsample::kTransposedConv;
  ExpectSameCount(spec, "capped widths");
}

TEST(CountNetworkParametersTest, ClassifierMatchesTheBuiltNetwork) {
  NetworkSpec spec;
  spec.family = Family::kClassifier;
  spec.classifier = SmallClassifier();
  ExpectSameCount(spec, "basic blocks");
  spec.classifier.block = models::BlockType::kBottleneck;
  spec.classifier.stage_strides = {2, 1, 2, 1};
  spec.classifier.stem_stride = 1;
  ExpectSameCount(spec, "bottleneck blocks, other strides");
  spec.classifier.stage_widths = {6, 6, 3, 40};  // bottleneck inner width out / 4 rounds down
  ExpectSameCount(spec, "odd widths");
}

TEST(CountNetworkParametersTest, EncoderUNetMatchesTheBuiltNetwork) {
  NetworkSpec spec;
  spec.family = Family::kEncoderUNet;
  spec.encoder_unet.encoder = SmallClassifier();
  spec.encoder_unet.decoder_base_width = 4;
  ExpectSameCount(spec, "defaults (bilinear)");
  spec.encoder_unet.upsample = models::Upsample::kTransposedConv;
  spec.encoder_unet.decoder_max_width = 16;
  ExpectSameCount(spec, "transposed, capped");
  spec.encoder_unet.encoder.stem_stride = 1;
  spec.encoder_unet.encoder.stage_strides = {2, 1, 2, 2};
  spec.encoder_unet.encoder.block = models::BlockType::kBottleneck;
  spec.encoder_unet.decoder_base_width = 8;  // some skips match their level's width: no adapter
  ExpectSameCount(spec, "stem stride 1, a stride-1 stage, bottlenecks");
  spec.encoder_unet.encoder_mode = models::EncoderMode::kFrozen;
  ExpectSameCount(spec, "frozen (still counted)");
}

TEST(CountNetworkParametersTest, FittedWidthMatchesTheFactorysFit) {
  for (Family family : {Family::kUNet, Family::kClassifier, Family::kEncoderUNet}) {
    NetworkSpec spec;
    spec.family = family;
    spec.classifier = SmallClassifier();
    spec.encoder_unet.encoder = SmallClassifier();
    spec.parameter_budget = 150000;
    spec.fit_width_to_budget = true;
    ExpectSameCount(spec, models::FamilyName(family));
  }
}

}  // namespace
}  // namespace selene::jobs
