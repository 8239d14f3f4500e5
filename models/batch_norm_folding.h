// Folding BatchNorm into the convolution before it, for inference. In eval mode a BatchNorm is a
// fixed per-channel affine map, so conv -> BN equals one convolution with scaled weights and a
// bias: the forward pass then skips one full pass over every activation. Serving folds each
// network once after loading it (NetworkImpl::fold_batch_norms); training never does.
#pragma once

#include <torch/torch.h>

namespace selene::models {

// A new convolution (same options, with a bias) whose output equals bn(conv(x)) with `bn` in
// eval mode: weights scaled per output channel by gamma / sqrt(running_var + eps), bias
// beta - running_mean * that scale (plus the conv's own bias, scaled). Its parameters do not
// require gradients. Throws c10::Error when `bn` keeps no running statistics or its channel
// count differs from the conv's outputs.
torch::nn::Conv2d FoldBatchNorm(const torch::nn::Conv2d& conv, const torch::nn::BatchNorm2d& bn);

// The same Sequential with every BatchNorm2d that directly follows a Conv2d folded into it and
// dropped; other children (ReLU, ...) keep their names and order. Used for the "conv", "bn"
// [, "relu"] Sequentials of the classifier's stem and shortcuts.
torch::nn::Sequential FoldBatchNorms(const torch::nn::Sequential& sequential);

}  // namespace selene::models
