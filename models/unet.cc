// The U-Net and the blocks its decoder shares with EncoderUNet.
#include "models/unet.h"

#include <algorithm>
#include <string>
#include <utility>

#include "models/batch_norm_folding.h"
#include "models/pixel_shuffle_upsampling.h"
#include "models/seeded_randomness.h"

namespace selene::models {
namespace {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

constexpr int kLevels = 5;  // full resolution, three downsampled levels and the bottleneck

// Kaiming (fan_out) for convs followed by BN + ReLU, as in torchvision's ResNet.
void KaimingInit(nn::Conv2d& conv) {
  torch::NoGradGuard no_grad;
  nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
}

// Bilinear with align_corners=false: the convention of torch's own Upsample and of the
// serving path's resizing, so features and masks stay pixel-centred.
torch::Tensor ResizeTo(const torch::Tensor& x, int64_t height, int64_t width) {
  return F::interpolate(x, F::InterpolateFuncOptions()
                               .size(std::vector<int64_t>{height, width})
                               .mode(torch::kBilinear)
                               .align_corners(false));
}

}  // namespace

DoubleConvImpl::DoubleConvImpl(int64_t in_channels, int64_t out_channels, int64_t stride)
    : conv1_(register_module("conv1", nn::Conv2d(nn::Conv2dOptions(in_channels, out_channels, 3)
                                                     .stride(stride)
                                                     .padding(1)
                                                     .bias(false)))),
      bn1_(register_module("bn1", nn::BatchNorm2d(out_channels))),
      conv2_(register_module(
          "conv2",
          nn::Conv2d(nn::Conv2dOptions(out_channels, out_channels, 3).padding(1).bias(false)))),
      bn2_(register_module("bn2", nn::BatchNorm2d(out_channels))) {
  KaimingInit(conv1_);
  KaimingInit(conv2_);
}

torch::Tensor DoubleConvImpl::forward(torch::Tensor x) {
  if (folded_) {
    TORCH_CHECK(!is_training(), "DoubleConv: BatchNorms are folded (inference only)");
    x = conv1_->forward(x).relu_();
    return conv2_->forward(x).relu_();
  }
  x = torch::relu(bn1_->forward(conv1_->forward(x)));
  return torch::relu(bn2_->forward(conv2_->forward(x)));
}

void DoubleConvImpl::fold_batch_norms() {
  if (folded_) return;
  conv1_ = replace_module("conv1", FoldBatchNorm(conv1_, bn1_));
  conv2_ = replace_module("conv2", FoldBatchNorm(conv2_, bn2_));
  folded_ = true;
}

UpBlockImpl::UpBlockImpl(int64_t in_channels, int64_t skip_channels, int64_t out_channels,
                         int64_t scale, Upsample upsample) {
  TORCH_CHECK(scale >= 1, "UpBlock: scale must be >= 1, got ", scale);
  int64_t up_channels = in_channels;
  if (scale > 1 && upsample == Upsample::kTransposedConv) {
    transposed_ = register_module(
        "up", nn::ConvTranspose2d(
                  nn::ConvTranspose2dOptions(in_channels, out_channels, scale).stride(scale)));
    up_channels = out_channels;
  } else if (scale > 1) {
    project_ = register_module("up", nn::Conv2d(nn::Conv2dOptions(in_channels, out_channels, 1)));
    up_channels = out_channels;
  }
  conv_ = register_module("conv", DoubleConv(up_channels + skip_channels, out_channels));
}

torch::Tensor UpBlockImpl::forward(torch::Tensor x, torch::Tensor skip) {
  const int64_t height = skip.size(2);
  const int64_t width = skip.size(3);
  if (!transposed_.is_empty()) {
    // Channels-last: LibTorch's transposed convolution converts layouts around its slow kernel
    // and the 1x1 conv + pixel shuffle computing the same is 1.4-1.6x faster in bf16. On NCHW
    // the native kernel is as fast for training and faster for one image (measured by hand;
    // docs/benchmarks.md, "Training throughput").
    x = x.is_contiguous(torch::MemoryFormat::ChannelsLast) ? PixelShuffleUpsample(transposed_, x)
                                                           : transposed_->forward(x);
  } else if (!project_.is_empty()) {
    // A 1x1 conv commutes with bilinear interpolation (both are linear, the interpolation
    // weights sum to 1), so projecting first gives the same result on 1/scale^2 of the pixels.
    x = project_->forward(x);
  }
  if (x.size(2) != height || x.size(3) != width) x = ResizeTo(x, height, width);
  return conv_->forward(torch::cat({x, skip}, /*dim=*/1));
}

UNetImpl::UNetImpl(const UNetOptions& options) : options_(options) {
  TORCH_CHECK(options_.in_channels > 0 && options_.out_channels > 0 && options_.base_width > 0,
              "UNet: in_channels, out_channels and base_width must be positive");
  for (int level = 0; level < kLevels; ++level) {
    int64_t width = options_.base_width << level;
    if (options_.max_width > 0) width = std::min(width, options_.max_width);
    widths_.push_back(width);
  }

  // Max pooling happens in forward(); a strided conv folds the downsampling into the first conv.
  const int64_t down_stride = options_.downsample == Downsample::kStridedConv ? 2 : 1;
  for (int level = 0; level < kLevels; ++level) {
    const int64_t in = level == 0 ? options_.in_channels : widths_[level - 1];
    const std::string name = level == kLevels - 1 ? "bottleneck" : "down" + std::to_string(level);
    down_.push_back(
        register_module(name, DoubleConv(in, widths_[level], level == 0 ? 1 : down_stride)));
  }

  up_.resize(kLevels - 1, UpBlock(nullptr));
  for (int level = kLevels - 2; level >= 0; --level) {
    up_[level] = register_module("up" + std::to_string(level),
                                 UpBlock(widths_[level + 1], widths_[level], widths_[level],
                                         /*scale=*/2, options_.upsample));
  }
  head_ =
      register_module("head", nn::Conv2d(nn::Conv2dOptions(widths_[0], options_.out_channels, 1)));
}

torch::Tensor UNetImpl::forward(torch::Tensor images) {
  TORCH_CHECK(images.dim() == 4 && images.size(1) == options_.in_channels,
              "UNet: expected images [N, ", options_.in_channels, ", H, W], got ", images.sizes());
  std::vector<torch::Tensor> skips;
  torch::Tensor x = images;
  for (int level = 0; level < kLevels; ++level) {
    if (level > 0 && options_.downsample == Downsample::kMaxPool) x = torch::max_pool2d(x, 2);
    x = down_[level]->forward(x);
    if (level < kLevels - 1) skips.push_back(x);
  }
  x = ThreadSeededDropout(x, options_.dropout, is_training());
  for (int level = kLevels - 2; level >= 0; --level) x = up_[level]->forward(x, skips[level]);
  return head_->forward(x);
}

void UNetImpl::fold_batch_norms() {
  for (DoubleConv& block : down_) block->fold_batch_norms();
  for (UpBlock& block : up_) block->fold_batch_norms();
}

std::vector<StageSummary> UNetImpl::summary() const {
  std::vector<StageSummary> rows;
  for (int level = 0; level < kLevels; ++level) {
    const std::string name = level == kLevels - 1 ? "bottleneck" : "down" + std::to_string(level);
    const int64_t in = level == 0 ? options_.in_channels : widths_[level - 1];
    rows.push_back({name, in, widths_[level], int64_t{1} << level, CountParameters(*down_[level])});
  }
  for (int level = kLevels - 2; level >= 0; --level) {
    rows.push_back({"up" + std::to_string(level), widths_[level + 1], widths_[level],
                    int64_t{1} << level, CountParameters(*up_[level])});
  }
  rows.push_back({"head", widths_[0], options_.out_channels, 1, CountParameters(*head_)});
  return rows;
}

}  // namespace selene::models
