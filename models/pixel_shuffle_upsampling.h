// A transposed convolution whose kernel equals its stride (the U-Net's learned 2x upsampling),
// computed as a 1x1 convolution to scale^2 times the channels followed by a pixel shuffle.
//
// With kernel == stride the output windows do not overlap: each input pixel writes its own
// scale x scale block, out[n, o, s*h+i, s*w+j] = sum_c x[n, c, h, w] * W[c, o, i, j] + b[o].
// That is a 1x1 convolution with (o, i, j) as output channels, then pixel_shuffle(scale) to
// move (i, j) into space. Same parameters, same result; the point is speed: LibTorch 1.13 has
// no oneDNN kernel for transposed convolutions (it runs `slow_conv_transpose2d`, and converts
// dtype and layout around it under bf16 autocast and channels-last), while a 1x1 convolution
// is a oneDNN kernel in every precision and layout. Measured in docs/benchmarks.md.
#pragma once

#include <torch/torch.h>

namespace selene::models {

// True when `transposed` is one this formulation computes exactly: square kernel equal to the
// stride, no padding, output padding, dilation or groups.
bool IsPixelShuffleUpsampling(const torch::nn::ConvTranspose2d& transposed);

// `transposed`'s forward computed as a 1x1 convolution and a pixel shuffle; differentiable in
// x, weight and bias like the module's own forward. Throws c10::Error unless
// IsPixelShuffleUpsampling(transposed).
torch::Tensor PixelShuffleUpsample(const torch::nn::ConvTranspose2d& transposed,
                                   const torch::Tensor& x);

}  // namespace selene::models
