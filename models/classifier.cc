// The ResNet-style classifier: residual blocks, stages and the head.
#include "models/classifier.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>

#include "models/batch_norm_folding.h"
#include "models/seeded_randomness.h"

namespace selene::models {
namespace {

namespace nn = torch::nn;

// Convolution + BatchNorm: the bias would be cancelled by the BatchNorm's mean subtraction.
nn::Sequential ConvBn(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
  return nn::Sequential(
      {{"conv",
        nn::Conv2d(
            nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false))},
       {"bn", nn::BatchNorm2d(out)}});
}

// The projection shortcut when a block changes shape; nullptr (identity) when it does not.
nn::Sequential MakeShortcut(int64_t in, int64_t out, int64_t stride) {
  if (in == out && stride == 1) return nn::Sequential(nullptr);
  return ConvBn(in, out, 1, stride);
}

// Zeroing the last BatchNorm's gamma makes each residual block start as the identity, which
// makes deep residual nets train faster and more stably (Goyal et al., "Accurate, Large
// Minibatch SGD").
void ZeroGamma(nn::BatchNorm2d& bn) {
  torch::NoGradGuard no_grad;
  bn->weight.zero_();
}

// Two 3x3 convolutions; the first carries the stride.
class BasicBlockImpl : public nn::Module {
 public:
  BasicBlockImpl(int64_t in, int64_t out, int64_t stride)
      : conv1_(register_module(
            "conv1",
            nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false)))),
        bn1_(register_module("bn1", nn::BatchNorm2d(out))),
        conv2_(register_module("conv2",
                               nn::Conv2d(nn::Conv2dOptions(out, out, 3).padding(1).bias(false)))),
        bn2_(register_module("bn2", nn::BatchNorm2d(out))),
        shortcut_(MakeShortcut(in, out, stride)) {
    if (!shortcut_.is_empty()) register_module("shortcut", shortcut_);
    ZeroGamma(bn2_);
  }

  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor identity = shortcut_.is_empty() ? x : shortcut_->forward(x);
    if (folded_) {
      TORCH_CHECK(!is_training(), "BasicBlock: BatchNorms are folded (inference only)");
      x = conv1_->forward(x).relu_();
      return conv2_->forward(x).add_(identity).relu_();
    }
    x = torch::relu(bn1_->forward(conv1_->forward(x)));
    x = bn2_->forward(conv2_->forward(x));
    return torch::relu(x + identity);
  }

  void fold_batch_norms() {
    if (folded_) return;
    conv1_ = replace_module("conv1", FoldBatchNorm(conv1_, bn1_));
    conv2_ = replace_module("conv2", FoldBatchNorm(conv2_, bn2_));
    if (!shortcut_.is_empty()) shortcut_ = replace_module("shortcut", FoldBatchNorms(shortcut_));
    folded_ = true;
  }

 private:
  nn::Conv2d conv1_;
  nn::BatchNorm2d bn1_;
  nn::Conv2d conv2_;
  nn::BatchNorm2d bn2_;
  nn::Sequential shortcut_;
  bool folded_ = false;
};
TORCH_MODULE(BasicBlock);

// 1x1 reduce, 3x3 (carrying the stride, as in ResNet v1.5), 1x1 expand to `out`; the inner
// width is out / 4, like torchvision's expansion of 4.
class BottleneckBlockImpl : public nn::Module {
 public:
  BottleneckBlockImpl(int64_t in, int64_t out, int64_t stride) {
    const int64_t mid = std::max<int64_t>(1, out / 4);
    conv1_ = register_module("conv1", nn::Conv2d(nn::Conv2dOptions(in, mid, 1).bias(false)));
    bn1_ = register_module("bn1", nn::BatchNorm2d(mid));
    conv2_ = register_module(
        "conv2", nn::Conv2d(nn::Conv2dOptions(mid, mid, 3).stride(stride).padding(1).bias(false)));
    bn2_ = register_module("bn2", nn::BatchNorm2d(mid));
    conv3_ = register_module("conv3", nn::Conv2d(nn::Conv2dOptions(mid, out, 1).bias(false)));
    bn3_ = register_module("bn3", nn::BatchNorm2d(out));
    shortcut_ = MakeShortcut(in, out, stride);
    if (!shortcut_.is_empty()) register_module("shortcut", shortcut_);
    ZeroGamma(bn3_);
  }

  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor identity = shortcut_.is_empty() ? x : shortcut_->forward(x);
    if (folded_) {
      TORCH_CHECK(!is_training(), "BottleneckBlock: BatchNorms are folded (inference only)");
      x = conv1_->forward(x).relu_();
      x = conv2_->forward(x).relu_();
      return conv3_->forward(x).add_(identity).relu_();
    }
    x = torch::relu(bn1_->forward(conv1_->forward(x)));
    x = torch::relu(bn2_->forward(conv2_->forward(x)));
    x = bn3_->forward(conv3_->forward(x));
    return torch::relu(x + identity);
  }

  void fold_batch_norms() {
    if (folded_) return;
    conv1_ = replace_module("conv1", FoldBatchNorm(conv1_, bn1_));
    conv2_ = replace_module("conv2", FoldBatchNorm(conv2_, bn2_));
    conv3_ = replace_module("conv3", FoldBatchNorm(conv3_, bn3_));
    if (!shortcut_.is_empty()) shortcut_ = replace_module("shortcut", FoldBatchNorms(shortcut_));
    folded_ = true;
  }

 private:
  nn::Conv2d conv1_{nullptr}, conv2_{nullptr}, conv3_{nullptr};
  nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr}, bn3_{nullptr};
  nn::Sequential shortcut_{nullptr};
  bool folded_ = false;
};
TORCH_MODULE(BottleneckBlock);

}  // namespace

ClassifierImpl::ClassifierImpl(const ClassifierOptions& options) : options_(options) {
  const size_t num_stages = options_.stage_widths.size();
  TORCH_CHECK(num_stages > 0 && options_.stage_blocks.size() == num_stages &&
                  options_.stage_strides.size() == num_stages,
              "Classifier: stage_widths, stage_blocks and stage_strides must be non-empty and of "
              "equal length");
  TORCH_CHECK(options_.in_channels > 0 && options_.stem_width > 0 && options_.stem_stride > 0,
              "Classifier: in_channels, stem_width and stem_stride must be positive");

  stem_ = register_module(
      "stem",
      nn::Sequential(
          {{"conv", nn::Conv2d(nn::Conv2dOptions(options_.in_channels, options_.stem_width, 3)
                                   .stride(options_.stem_stride)
                                   .padding(1)
                                   .bias(false))},
           {"bn", nn::BatchNorm2d(options_.stem_width)},
           {"relu", nn::ReLU()}}));

  int64_t in = options_.stem_width;
  for (size_t s = 0; s < num_stages; ++s) {
    const int64_t out = options_.stage_widths[s];
    TORCH_CHECK(out > 0 && options_.stage_blocks[s] > 0 && options_.stage_strides[s] > 0,
                "Classifier: stage ", s + 1, " needs a positive width, block count and stride");
    nn::Sequential stage;
    for (int64_t b = 0; b < options_.stage_blocks[s]; ++b) {
      const int64_t stride = b == 0 ? options_.stage_strides[s] : 1;
      if (options_.block == BlockType::kBottleneck) {
        stage->push_back(BottleneckBlock(in, out, stride));
      } else {
        stage->push_back(BasicBlock(in, out, stride));
      }
      in = out;
    }
    stages_.push_back(register_module("stage" + std::to_string(s + 1), stage));
  }

  if (options_.head) {
    TORCH_CHECK(options_.num_classes > 0, "Classifier: num_classes must be positive");
    head_ = register_module("head", nn::Linear(in, options_.num_classes));
  }

  // Kaiming (fan_out) as in torchvision's ResNet: keeps activations' scale through the ReLUs.
  // BatchNorm and the linear head keep torch's defaults (the zeroed gammas stay zero).
  torch::NoGradGuard no_grad;
  for (const auto& module : modules(/*include_self=*/false)) {
    if (auto* conv = module->as<nn::Conv2d>()) {
      nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
    }
  }
}

std::vector<torch::Tensor> ClassifierImpl::features(torch::Tensor images) {
  TORCH_CHECK(images.dim() == 4 && images.size(1) == options_.in_channels,
              "Classifier: expected images [N, ", options_.in_channels, ", H, W], got ",
              images.sizes());
  std::vector<torch::Tensor> outputs;
  outputs.reserve(stages_.size() + 1);
  torch::Tensor x = stem_->forward(images);
  outputs.push_back(x);
  for (auto& stage : stages_) {
    x = stage->forward(x);
    outputs.push_back(x);
  }
  return outputs;
}

torch::Tensor ClassifierImpl::forward(torch::Tensor images) {
  TORCH_CHECK(!head_.is_empty(),
              "Classifier was built with head=false (as an encoder): forward() has no head to "
              "produce logits; use features()");
  torch::Tensor x = features(std::move(images)).back();
  x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
  x = ThreadSeededDropout(x, options_.dropout, is_training());
  return head_->forward(x);
}

void ClassifierImpl::fold_batch_norms() {
  if (folded_) return;
  stem_ = replace_module("stem", FoldBatchNorms(stem_));
  for (nn::Sequential& stage : stages_) {
    for (const std::shared_ptr<nn::Module>& block : stage->children()) {
      if (auto basic = std::dynamic_pointer_cast<BasicBlockImpl>(block)) {
        basic->fold_batch_norms();
      } else if (auto bottleneck = std::dynamic_pointer_cast<BottleneckBlockImpl>(block)) {
        bottleneck->fold_batch_norms();
      }
    }
  }
  folded_ = true;
}

std::vector<int64_t> ClassifierImpl::feature_channels() const {
  std::vector<int64_t> channels = {options_.stem_width};
  channels.insert(channels.end(), options_.stage_widths.begin(), options_.stage_widths.end());
  return channels;
}

std::vector<int64_t> ClassifierImpl::feature_strides() const {
  std::vector<int64_t> strides = {options_.stem_stride};
  for (int64_t stride : options_.stage_strides) strides.push_back(strides.back() * stride);
  return strides;
}

std::vector<StageSummary> ClassifierImpl::summary() const {
  const std::vector<int64_t> channels = feature_channels();
  const std::vector<int64_t> strides = feature_strides();
  std::vector<StageSummary> rows;
  rows.push_back({"stem", options_.in_channels, channels[0], strides[0], CountParameters(*stem_)});
  for (size_t s = 0; s < stages_.size(); ++s) {
    rows.push_back({"stage" + std::to_string(s + 1), channels[s], channels[s + 1], strides[s + 1],
                    CountParameters(*stages_[s])});
  }
  if (!head_.is_empty()) {
    rows.push_back(
        {"head", channels.back(), options_.num_classes, strides.back(), CountParameters(*head_)});
  }
  return rows;
}

}  // namespace selene::models
