// The classic U-Net for binary and multi-class segmentation: four downsamplings, four
// upsamplings with skip connections. Its building blocks (DoubleConv, UpBlock) are also the
// decoder of EncoderUNet.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "models/model_options.h"
#include "models/network.h"

namespace selene::models {

// Two (3x3 conv + BN + ReLU). The first conv carries `stride`, so a stride of 2 makes this a
// learned downsampling (Downsample::kStridedConv) at no extra parameters.
class DoubleConvImpl : public torch::nn::Module {
 public:
  DoubleConvImpl(int64_t in_channels, int64_t out_channels, int64_t stride = 1);
  torch::Tensor forward(torch::Tensor x);

  // Inference only (NetworkImpl::fold_batch_norms): each BN folded into its conv, which gains a
  // bias; forward() then skips the BNs and refuses to run in training mode.
  void fold_batch_norms();

 private:
  torch::nn::Conv2d conv1_;
  torch::nn::BatchNorm2d bn1_;
  torch::nn::Conv2d conv2_;
  torch::nn::BatchNorm2d bn2_;
  bool folded_ = false;
};
TORCH_MODULE(DoubleConv);

// One decoder step: brings `x` up to the skip's resolution, concatenates the skip and mixes both
// with a DoubleConv to `out_channels`. `scale` is the skip's resolution over x's (a power of 2);
// at 1 there is nothing to upsample and x is concatenated as it is. The upsampled tensor always
// ends at exactly the skip's H, W (bilinear resize as a last resort), so odd sizes still work.
class UpBlockImpl : public torch::nn::Module {
 public:
  UpBlockImpl(int64_t in_channels, int64_t skip_channels, int64_t out_channels, int64_t scale,
              Upsample upsample);
  torch::Tensor forward(torch::Tensor x, torch::Tensor skip);

  void fold_batch_norms() { conv_->fold_batch_norms(); }

 private:
  torch::nn::ConvTranspose2d transposed_{nullptr};  // "up", Upsample::kTransposedConv
  torch::nn::Conv2d project_{nullptr};              // "up", Upsample::kBilinear: 1x1 conv
  DoubleConv conv_{nullptr};                        // "conv"
};
TORCH_MODULE(UpBlock);

// Submodules: "down0" (full resolution), "down1".."down3", "bottleneck" (1/16), "up3".."up0",
// "head" (1x1 conv to out_channels logits). Dropout after the bottleneck has no parameters and
// draws from the thread's generator (models/seeded_randomness.h).
class UNetImpl : public NetworkImpl {
 public:
  explicit UNetImpl(const UNetOptions& options = {});

  // images [N, in_channels, H, W] -> logits [N, out_channels, H, W]. H and W should be
  // divisible by 16; other sizes work but skips are then resampled to line up.
  torch::Tensor forward(torch::Tensor images) override;

  std::vector<StageSummary> summary() const override;

  void fold_batch_norms() override;

  // Width of levels 0..4: base_width * 2^level, capped at max_width when it is > 0.
  std::vector<int64_t> level_widths() const { return widths_; }
  const UNetOptions& options() const { return options_; }

 private:
  UNetOptions options_;
  std::vector<int64_t> widths_;
  std::vector<DoubleConv> down_;  // levels 0..4; level 4 is "bottleneck"
  std::vector<UpBlock> up_;       // up_[l] produces level l
  torch::nn::Conv2d head_{nullptr};
};
TORCH_MODULE(UNet);

}  // namespace selene::models
