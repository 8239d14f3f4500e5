// Tests for models/factory.h: building every family, validation errors that name the field and
// value, parameter budgets, fitting the base width to a budget, and the summary table.
#include "models/factory.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "models/classifier.h"
#include "models/encoder_unet.h"
#include "models/unet.h"

namespace selene::models {
namespace {

using ::testing::HasSubstr;

std::string WithCommas(int64_t value) {
  std::string digits = std::to_string(value);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) digits.insert(i, ",");
  return digits;
}

std::string MessageOf(const Status& status) { return std::string(status.message()); }

NetworkSpec SpecOf(Family family) {
  NetworkSpec spec;
  spec.family = family;
  return spec;
}

ClassifierOptions SmallEncoder() {
  ClassifierOptions options;
  options.stem_width = 8;
  options.stage_widths = {8, 16, 16, 32};
  options.stage_blocks = {1, 1, 1, 1};
  return options;
}

int64_t CountOrDie(const NetworkSpec& spec) {
  StatusOr<int64_t> count = CountSpecParameters(spec);
  EXPECT_TRUE(count.ok()) << count.status();
  return count.ok() ? *count : -1;
}

TEST(FactoryTest, BuildsEveryFamilyWithDefaults) {
  torch::manual_seed(0);
  StatusOr<Network> classifier = BuildNetwork(SpecOf(Family::kClassifier));
  ASSERT_TRUE(classifier.ok()) << classifier.status();
  EXPECT_NE(std::dynamic_pointer_cast<ClassifierImpl>(*classifier), nullptr);
  EXPECT_LT(CountParameters(**classifier), 5'000'000);

  StatusOr<Network> unet = BuildNetwork(SpecOf(Family::kUNet));
  ASSERT_TRUE(unet.ok()) << unet.status();
  EXPECT_NE(std::dynamic_pointer_cast<UNetImpl>(*unet), nullptr);
  EXPECT_LE(CountParameters(**unet), 2'750'000);

  StatusOr<Network> encoder_unet = BuildNetwork(SpecOf(Family::kEncoderUNet));
  ASSERT_TRUE(encoder_unet.ok()) << encoder_unet.status();
  EXPECT_NE(std::dynamic_pointer_cast<EncoderUNetImpl>(*encoder_unet), nullptr);

  EXPECT_EQ(FamilyName(Family::kClassifier), "classifier");
  EXPECT_EQ(FamilyName(Family::kUNet), "unet");
  EXPECT_EQ(FamilyName(Family::kEncoderUNet), "encoder_unet");
}

TEST(FactoryTest, CountSpecParametersMatchesTheBuiltNetwork) {
  for (Family family : {Family::kClassifier, Family::kUNet, Family::kEncoderUNet}) {
    const NetworkSpec spec = SpecOf(family);
    StatusOr<Network> network = BuildNetwork(spec);
    ASSERT_TRUE(network.ok()) << network.status();
    EXPECT_EQ(CountOrDie(spec), CountParameters(**network)) << FamilyName(family);
  }
}

struct InvalidCase {
  void (*mutate)(NetworkSpec&);
  Family family;
  const char* message;
};

TEST(FactoryTest, RejectsImpossibleOptionsNamingFieldAndValue) {
  const InvalidCase cases[] = {
      {[](NetworkSpec& s) { s.unet.base_width = 0; }, Family::kUNet,
       "unet.base_width: 0 must be >= 1"},
      {[](NetworkSpec& s) { s.unet.out_channels = 0; }, Family::kUNet,
       "unet.out_channels: 0 must be >= 1"},
      {[](NetworkSpec& s) { s.unet.max_width = -4; }, Family::kUNet,
       "unet.max_width: -4 must be >= 0"},
      {[](NetworkSpec& s) { s.unet.dropout = 1.0; }, Family::kUNet,
       "unet.dropout: 1 must be in [0, 1)"},
      {[](NetworkSpec& s) { s.classifier.num_classes = 0; }, Family::kClassifier,
       "classifier.num_classes: 0 must be >= 1"},
      {[](NetworkSpec& s) { s.classifier.stem_stride = 4; }, Family::kClassifier,
       "classifier.stem_stride: 4 must be 1 or 2"},
      {[](NetworkSpec& s) {
         s.classifier.stage_strides = {1, 3, 2, 2};
       },
       Family::kClassifier, "classifier.stage_strides[1]: 3 must be 1 or 2"},
      {[](NetworkSpec& s) {
         s.classifier.stage_widths = {32, 64, 128};
       },
       Family::kClassifier, "classifier.stage_widths: 3 entries, must have 4"},
      {[](NetworkSpec& s) { s.classifier.stage_widths[2] = 0; }, Family::kClassifier,
       "classifier.stage_widths[2]: 0 must be >= 1"},
      {[](NetworkSpec& s) {
         s.encoder_unet.encoder.stage_blocks = {2, 0, 2, 2};
       },
       Family::kEncoderUNet, "encoder_unet.encoder.stage_blocks[1]: 0 must be >= 1"},
      {[](NetworkSpec& s) { s.encoder_unet.encoder_lr_scale = 0; }, Family::kEncoderUNet,
       "encoder_unet.encoder_lr_scale: 0 must be > 0"},
      {[](NetworkSpec& s) { s.encoder_unet.unfreeze_epoch = -1; }, Family::kEncoderUNet,
       "encoder_unet.unfreeze_epoch: -1 must be >= 0"},
      {[](NetworkSpec& s) { s.encoder_unet.decoder_base_width = 0; }, Family::kEncoderUNet,
       "encoder_unet.decoder_base_width: 0 must be >= 1"},
      {[](NetworkSpec& s) { s.encoder_unet.out_channels = 0; }, Family::kEncoderUNet,
       "encoder_unet.out_channels: 0 must be >= 1"},
      {[](NetworkSpec& s) { s.parameter_budget = -5; }, Family::kUNet,
       "parameter_budget: -5 must be >= 0"},
  };
  for (const InvalidCase& test_case : cases) {
    NetworkSpec spec = SpecOf(test_case.family);
    test_case.mutate(spec);
    StatusOr<Network> network = BuildNetwork(spec);
    ASSERT_FALSE(network.ok()) << test_case.message;
    EXPECT_EQ(network.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(MessageOf(network.status()), HasSubstr(test_case.message));
    EXPECT_FALSE(CountSpecParameters(spec).ok()) << test_case.message;
  }
}

TEST(FactoryTest, EncoderHeadFieldsAreNotValidated) {
  NetworkSpec spec = SpecOf(Family::kEncoderUNet);
  spec.encoder_unet.encoder = SmallEncoder();
  spec.encoder_unet.encoder.num_classes = 0;  // unset in the proto: the encoder has no head
  EXPECT_TRUE(BuildNetwork(spec).ok());
}

TEST(FactoryTest, OverBudgetIsAnErrorWithTheNumbers) {
  NetworkSpec spec = SpecOf(Family::kUNet);
  const int64_t parameters = CountOrDie(spec);
  spec.parameter_budget = 1'000'000;
  StatusOr<Network> network = BuildNetwork(spec);
  ASSERT_FALSE(network.ok());
  EXPECT_EQ(network.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(MessageOf(network.status()), HasSubstr("model has " + WithCommas(parameters) +
                                                     " parameters, over the budget of 1,000,000"));

  spec.parameter_budget = parameters;  // exactly at the budget is fine
  EXPECT_TRUE(BuildNetwork(spec).ok());
}

TEST(FactoryTest, FitPicksTheWidestUNetBaseWidth) {
  NetworkSpec spec = SpecOf(Family::kUNet);
  spec.parameter_budget = 2'500'000;
  spec.fit_width_to_budget = true;
  StatusOr<NetworkSpec> fitted = FitWidthToBudget(spec);
  ASSERT_TRUE(fitted.ok()) << fitted.status();
  const int64_t width = fitted->unet.base_width;
  NetworkSpec probe = *fitted;
  probe.fit_width_to_budget = false;
  EXPECT_LE(CountOrDie(probe), spec.parameter_budget);
  probe.unet.base_width = width + 1;
  EXPECT_GT(CountOrDie(probe), spec.parameter_budget);

  StatusOr<Network> network = BuildNetwork(spec);
  ASSERT_TRUE(network.ok()) << network.status();
  EXPECT_EQ(std::dynamic_pointer_cast<UNetImpl>(*network)->options().base_width, width);

  // A smaller budget than the current width needs shrinks it.
  spec.parameter_budget = 100'000;
  fitted = FitWidthToBudget(spec);
  ASSERT_TRUE(fitted.ok()) << fitted.status();
  probe = *fitted;
  probe.fit_width_to_budget = false;
  EXPECT_LT(probe.unet.base_width, 16);
  EXPECT_LE(CountOrDie(probe), 100'000);
  probe.unet.base_width += 1;
  EXPECT_GT(CountOrDie(probe), 100'000);
}

TEST(FactoryTest, FitStopsAtTheWidthCap) {
  NetworkSpec spec = SpecOf(Family::kUNet);
  spec.unet.max_width = 24;
  spec.parameter_budget = 50'000'000;
  StatusOr<NetworkSpec> fitted = FitWidthToBudget(spec);
  ASSERT_TRUE(fitted.ok()) << fitted.status();
  EXPECT_EQ(fitted->unet.base_width, 24);  // any wider base builds the same model
}

TEST(FactoryTest, FitScalesClassifierWidthsTogether) {
  NetworkSpec spec = SpecOf(Family::kClassifier);
  spec.classifier.num_classes = 10;
  spec.classifier.stage_blocks = {1, 1, 1, 1};
  spec.parameter_budget = 400'000;
  StatusOr<NetworkSpec> fitted = FitWidthToBudget(spec);
  ASSERT_TRUE(fitted.ok()) << fitted.status();
  const int64_t base = fitted->classifier.stem_width;
  EXPECT_EQ(fitted->classifier.stage_widths,
            (std::vector<int64_t>{base, 2 * base, 4 * base, 8 * base}));
  EXPECT_LE(CountOrDie(*fitted), spec.parameter_budget);
  NetworkSpec wider = *fitted;
  wider.classifier.stem_width = base + 1;
  wider.classifier.stage_widths = {base + 1, 2 * (base + 1), 4 * (base + 1), 8 * (base + 1)};
  EXPECT_GT(CountOrDie(wider), spec.parameter_budget);
}

TEST(FactoryTest, FitEncoderUNetTunesTheDecoderOnly) {
  NetworkSpec spec = SpecOf(Family::kEncoderUNet);
  spec.encoder_unet.encoder = SmallEncoder();
  NetworkSpec reference = spec;
  reference.encoder_unet.decoder_base_width = 10;
  spec.parameter_budget = CountOrDie(reference) + 1;
  StatusOr<NetworkSpec> fitted = FitWidthToBudget(spec);
  ASSERT_TRUE(fitted.ok()) << fitted.status();
  EXPECT_EQ(fitted->encoder_unet.decoder_base_width, 10);
  EXPECT_EQ(fitted->encoder_unet.encoder.stage_widths, spec.encoder_unet.encoder.stage_widths);
}

TEST(FactoryTest, FitFailsWhenNothingFitsOrThereIsNoBudget) {
  NetworkSpec spec = SpecOf(Family::kUNet);
  spec.parameter_budget = 100;
  StatusOr<NetworkSpec> fitted = FitWidthToBudget(spec);
  ASSERT_FALSE(fitted.ok());
  EXPECT_THAT(MessageOf(fitted.status()), HasSubstr("unet.base_width 1"));
  EXPECT_THAT(MessageOf(fitted.status()), HasSubstr("over the budget of 100"));

  spec.parameter_budget = 0;
  spec.fit_width_to_budget = true;
  StatusOr<Network> network = BuildNetwork(spec);
  ASSERT_FALSE(network.ok());
  EXPECT_THAT(MessageOf(network.status()), HasSubstr("parameter_budget: 0 must be > 0"));
}

TEST(FactoryTest, SummaryTableIsAlignedAndTotals) {
  StatusOr<Network> network = BuildNetwork(SpecOf(Family::kUNet));
  ASSERT_TRUE(network.ok()) << network.status();
  const std::string table = FormatSummary(**network);
  std::vector<std::string> lines;
  std::istringstream in(table);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  const std::vector<StageSummary> rows = (*network)->summary();
  ASSERT_EQ(lines.size(), rows.size() + 4);  // header, rule, rows, rule, total
  EXPECT_THAT(lines[0], HasSubstr("stage"));
  EXPECT_THAT(lines[0], HasSubstr("parameters"));
  for (const std::string& line : lines) EXPECT_EQ(line.size(), lines[0].size()) << line;
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(lines[i + 2].rfind(rows[i].name, 0), 0u) << lines[i + 2];
  }
  EXPECT_EQ(lines.back().rfind("total", 0), 0u);
  const std::string total = WithCommas(CountParameters(**network));
  EXPECT_EQ(lines.back().substr(lines.back().size() - total.size()), total);
  std::cout << table;
}

}  // namespace
}  // namespace selene::models
