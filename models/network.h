// The contract every Selene network keeps, so the Trainer, checkpoints and serving can treat a
// classifier, a U-Net and an encoder U-Net alike: images in, logits out, plus a summary of its
// stages and the parameter groups the optimizer should see.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace selene::models {

// One row of a model summary (`--describe`): a stage with its channels and scale.
struct StageSummary {
  std::string name;  // e.g. "stem", "stage2", "down3", "bottleneck", "up1", "head"
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t stride = 1;  // output resolution = input resolution / stride (cumulative)
  int64_t parameters = 0;
};

// A set of parameters trained with one learning-rate scale (1.0 = the base rate).
struct ParameterGroup {
  std::string name;
  std::vector<torch::Tensor> parameters;
  double lr_scale = 1.0;
};

class NetworkImpl : public torch::nn::Module {
 public:
  // images: float [N, C, H, W], normalised. Returns logits: [N, classes] for a classifier,
  // [N, 1 or K, H, W] for segmentation (same H, W as the input).
  virtual torch::Tensor forward(torch::Tensor images) = 0;

  virtual std::vector<StageSummary> summary() const = 0;

  // The parameters the optimizer owns. A frozen encoder is left out entirely.
  virtual std::vector<ParameterGroup> parameter_groups() { return {{"all", parameters(), 1.0}}; }

  // Called by the Trainer before each epoch (0-based); models with a freeze schedule use it to
  // freeze or unfreeze parts. Default: nothing.
  virtual void on_epoch_start(int64_t /*epoch*/) {}

  // Serving only: folds every BatchNorm into the convolution before it (exact in eval mode, where
  // a BatchNorm is a fixed per-channel affine map), so the forward pass skips one pass over each
  // activation. The network is then for inference only: forward() in training mode fails, and
  // its parameters no longer match a checkpoint's names (convolutions gained biases). Call it
  // once, after loading the weights and moving to the device. Default: nothing to fold.
  virtual void fold_batch_norms() {}
};

// Not a TORCH_MODULE holder: networks are abstract, so they are passed as shared_ptr.
using Network = std::shared_ptr<NetworkImpl>;

// Number of parameters (trainable or not) in `module` and all its children.
int64_t CountParameters(const torch::nn::Module& module);

// Stores every 4-d parameter (the convolution weights) channels-last (NHWC). Fed channels-last
// input, oneDNN then runs its NHWC convolutions and the activations stay NHWC all the way
// through, which is faster for some networks on CPU (measured in docs/benchmarks.md). Values,
// names and shapes are unchanged, so checkpoints load either way.
void UseChannelsLast(torch::nn::Module& module);

}  // namespace selene::models
