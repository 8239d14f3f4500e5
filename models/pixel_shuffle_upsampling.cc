#include "models/pixel_shuffle_upsampling.h"

namespace selene::models {
namespace {

bool AllEqual(torch::IntArrayRef values, int64_t expected) {
  for (int64_t value : values) {
    if (value != expected) return false;
  }
  return true;
}

}  // namespace

bool IsPixelShuffleUpsampling(const torch::nn::ConvTranspose2d& transposed) {
  // The module keeps ConvNdOptions, whose padding may also be "valid" or "same".
  const auto& options = transposed->options;
  const auto* padding = c10::get_if<torch::ExpandingArray<2>>(&options.padding());
  const int64_t scale = options.kernel_size()->at(0);
  return scale >= 1 && AllEqual(options.kernel_size(), scale) &&
         AllEqual(options.stride(), scale) && AllEqual(options.output_padding(), 0) &&
         AllEqual(options.dilation(), 1) && padding != nullptr && AllEqual(*padding, 0) &&
         options.groups() == 1;
}

torch::Tensor PixelShuffleUpsample(const torch::nn::ConvTranspose2d& transposed,
                                   const torch::Tensor& x) {
  TORCH_CHECK(IsPixelShuffleUpsampling(transposed),
              "PixelShuffleUpsample: needs kernel == stride and no padding, dilation or groups");
  const auto& options = transposed->options;
  const int64_t scale = options.kernel_size()->at(0);
  const int64_t in_channels = options.in_channels();
  const int64_t out_channels = options.out_channels();
  // Transposed-conv weights are [in, out, i, j]; the 1x1 conv wants [(out, i, j), in, 1, 1],
  // with out major so that pixel_shuffle reads channel o * scale^2 + i * scale + j.
  const torch::Tensor weight = transposed->weight.permute({1, 2, 3, 0})
                                   .reshape({out_channels * scale * scale, in_channels, 1, 1});
  torch::Tensor bias;
  if (transposed->bias.defined()) bias = transposed->bias.repeat_interleave(scale * scale);
  return torch::pixel_shuffle(torch::conv2d(x, weight, bias), scale);
}

}  // namespace selene::models
