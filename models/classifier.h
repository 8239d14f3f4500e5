// Selene's ResNet-style image classifier (3x128x128 by default). Its stem and stage outputs are
// exposed through features() so that EncoderUNet can reuse a trained classifier as its encoder.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "models/model_options.h"
#include "models/network.h"

namespace selene::models {

// stem (3x3 conv + BN + ReLU) -> stage1..stage4 (residual blocks) -> global average pool ->
// dropout (the thread's generator: models/seeded_randomness.h) -> linear head. Submodules are
// registered as "stem", "stage1".."stage4" and "head" (block i of stage s is "stage<s>.<i>"):
// checkpoints load encoder weights by these names, so they must not change.
class ClassifierImpl : public NetworkImpl {
 public:
  explicit ClassifierImpl(const ClassifierOptions& options = {});

  // images [N, C, H, W] -> logits [N, num_classes]. Throws c10::Error when built without a head.
  torch::Tensor forward(torch::Tensor images) override;

  // [stem output, stage1 output, ..., stage4 output]; valid with or without a head.
  std::vector<torch::Tensor> features(torch::Tensor images);

  // Channels and cumulative strides of the tensors features() returns, in the same order.
  std::vector<int64_t> feature_channels() const;
  std::vector<int64_t> feature_strides() const;

  // Rows "stem", "stage1".."stage4" and, with a head, "head" (stride: that of stage4, whose
  // output the head pools).
  std::vector<StageSummary> summary() const override;

  // The stem's, every block's and every shortcut's BatchNorm folded into its conv.
  void fold_batch_norms() override;

  const ClassifierOptions& options() const { return options_; }
  bool has_head() const { return !head_.is_empty(); }

 private:
  ClassifierOptions options_;
  torch::nn::Sequential stem_{nullptr};
  std::vector<torch::nn::Sequential> stages_;
  torch::nn::Linear head_{nullptr};  // only when options.head
  bool folded_ = false;
};
TORCH_MODULE(Classifier);

}  // namespace selene::models
