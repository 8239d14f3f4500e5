// The encoder U-Net: a U-Net decoder over a head-less Classifier, with its freeze schedule.
#include "models/encoder_unet.h"

#include <algorithm>
#include <utility>

#include "models/batch_norm_folding.h"

namespace selene::models {
namespace {

namespace nn = torch::nn;

int64_t Log2(int64_t stride) {
  TORCH_CHECK(stride > 0 && (stride & (stride - 1)) == 0,
              "EncoderUNet: encoder feature strides must be powers of 2, got ", stride);
  int64_t level = 0;
  while ((int64_t{1} << level) < stride) ++level;
  return level;
}

ClassifierOptions HeadlessEncoder(ClassifierOptions options) {
  options.head = false;
  return options;
}

}  // namespace

EncoderUNetImpl::EncoderUNetImpl(const EncoderUNetOptions& options) : options_(options) {
  TORCH_CHECK(options_.out_channels > 0 && options_.decoder_base_width > 0,
              "EncoderUNet: out_channels and decoder_base_width must be positive");
  encoder_ = register_module("encoder", Classifier(HeadlessEncoder(options_.encoder)));

  const std::vector<int64_t> channels = encoder_->feature_channels();
  const size_t num_features = channels.size();
  feature_names_.push_back("stem");
  for (size_t i = 1; i < num_features; ++i) feature_names_.push_back("stage" + std::to_string(i));
  for (int64_t stride : encoder_->feature_strides()) feature_levels_.push_back(Log2(stride));

  // Skips get a 1x1 adapter to their level's width where the encoder's channels differ. The
  // deepest feature needs none: the first up block's own up-conv already maps its channels.
  adapters_.resize(num_features, nn::Conv2d(nullptr));
  for (size_t i = 0; i + 1 < num_features; ++i) {
    const int64_t width = LevelWidth(feature_levels_[i]);
    if (channels[i] == width) continue;
    adapters_[i] =
        register_module("adapt_" + feature_names_[i],
                        nn::Conv2d(nn::Conv2dOptions(channels[i], width, 1).bias(false)));
  }

  up_.resize(num_features - 1, UpBlock(nullptr));
  int64_t in = channels.back();
  for (size_t i = num_features - 1; i-- > 0;) {
    const int64_t width = LevelWidth(feature_levels_[i]);
    const int64_t scale = int64_t{1} << (feature_levels_[i + 1] - feature_levels_[i]);
    TORCH_CHECK(scale >= 1, "EncoderUNet: encoder features must not grow in resolution");
    up_[i] = register_module("up_" + feature_names_[i],
                             UpBlock(in, width, width, scale, options_.upsample));
    in = width;
  }

  // The input's own full-resolution features: the stem already halves the resolution by
  // default, and without this skip the last upsampling would have no detail to restore.
  const int64_t width0 = LevelWidth(0);
  nn::Conv2d input_conv(
      nn::Conv2dOptions(options_.encoder.in_channels, width0, 3).padding(1).bias(false));
  {
    torch::NoGradGuard no_grad;
    nn::init::kaiming_normal_(input_conv->weight, 0.0, torch::kFanOut, torch::kReLU);
  }
  input_ = register_module(
      "input", nn::Sequential(
                   {{"conv", input_conv}, {"bn", nn::BatchNorm2d(width0)}, {"relu", nn::ReLU()}}));
  up_input_ = register_module(
      "up_input", UpBlock(in, width0, width0, int64_t{1} << feature_levels_[0], options_.upsample));
  head_ = register_module("head", nn::Conv2d(nn::Conv2dOptions(width0, options_.out_channels, 1)));

  SetEncoderFrozen(options_.encoder_mode != EncoderMode::kScratch);
}

int64_t EncoderUNetImpl::LevelWidth(int64_t level) const {
  int64_t width = options_.decoder_base_width << level;
  if (options_.decoder_max_width > 0) width = std::min(width, options_.decoder_max_width);
  return width;
}

std::vector<int64_t> EncoderUNetImpl::decoder_widths() const {
  std::vector<int64_t> widths;
  for (int64_t level : feature_levels_) widths.push_back(LevelWidth(level));
  widths.push_back(LevelWidth(0));
  return widths;
}

torch::Tensor EncoderUNetImpl::forward(torch::Tensor images) {
  const std::vector<torch::Tensor> features = encoder_->features(images);
  torch::Tensor x = features.back();
  for (size_t i = features.size() - 1; i-- > 0;) {
    torch::Tensor skip = adapters_[i].is_empty() ? features[i] : adapters_[i]->forward(features[i]);
    x = up_[i]->forward(x, skip);
  }
  x = up_input_->forward(x, input_->forward(images));
  return head_->forward(x);
}

void EncoderUNetImpl::fold_batch_norms() {
  encoder_->fold_batch_norms();
  for (UpBlock& block : up_) block->fold_batch_norms();
  input_ = replace_module("input", FoldBatchNorms(input_));  // idempotent: no BN left to fold
  up_input_->fold_batch_norms();
}

std::vector<StageSummary> EncoderUNetImpl::summary() const {
  std::vector<StageSummary> rows = encoder_->summary();
  const std::vector<int64_t> channels = encoder_->feature_channels();
  int64_t in = channels.back();
  for (size_t i = up_.size(); i-- > 0;) {
    int64_t parameters = CountParameters(*up_[i]);
    if (!adapters_[i].is_empty()) parameters += CountParameters(*adapters_[i]);
    const int64_t width = LevelWidth(feature_levels_[i]);
    rows.push_back(
        {"up_" + feature_names_[i], in, width, int64_t{1} << feature_levels_[i], parameters});
    in = width;
  }
  const int64_t width0 = LevelWidth(0);
  rows.push_back({"input", options_.encoder.in_channels, width0, 1, CountParameters(*input_)});
  rows.push_back({"up_input", in, width0, 1, CountParameters(*up_input_)});
  rows.push_back({"head", width0, options_.out_channels, 1, CountParameters(*head_)});
  return rows;
}

std::vector<ParameterGroup> EncoderUNetImpl::parameter_groups() {
  std::vector<torch::Tensor> decoder;
  for (const auto& item : named_parameters(/*recurse=*/true)) {
    if (item.key().rfind("encoder.", 0) != 0) decoder.push_back(item.value());
  }
  std::vector<ParameterGroup> groups = {{"decoder", std::move(decoder), 1.0}};
  switch (options_.encoder_mode) {
    case EncoderMode::kScratch:
      groups.push_back({"encoder", encoder_->parameters(), 1.0});
      break;
    case EncoderMode::kFrozen:
      break;
    case EncoderMode::kFineTune:
      groups.push_back({"encoder", encoder_->parameters(), options_.encoder_lr_scale});
      break;
  }
  return groups;
}

void EncoderUNetImpl::on_epoch_start(int64_t epoch) {
  if (options_.encoder_mode == EncoderMode::kFineTune) {
    SetEncoderFrozen(epoch < options_.unfreeze_epoch);
  }
}

void EncoderUNetImpl::train(bool on) {
  NetworkImpl::train(on);
  if (encoder_frozen_) encoder_->eval();
}

void EncoderUNetImpl::SetEncoderFrozen(bool frozen) {
  encoder_frozen_ = frozen;
  for (torch::Tensor& parameter : encoder_->parameters()) {
    parameter.set_requires_grad(!frozen);
    // A stale gradient would let the optimizer keep moving a frozen parameter.
    if (frozen && parameter.grad().defined()) parameter.mutable_grad().reset();
  }
  encoder_->train(!frozen && is_training());
}

}  // namespace selene::models
