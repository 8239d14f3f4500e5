// A very small segmentation network for engine tests that are about the loop, not the model:
// conv -> BatchNorm -> ReLU -> dropout -> 1x1 conv, so BatchNorm buffers and dropout are covered.
#pragma once

#include <torch/torch.h>

#include "models/network.h"
#include "models/seeded_randomness.h"
#include "server/train/tensor_dataset.h"

namespace selene::train::testing {

class TinyNetworkImpl : public models::NetworkImpl {
 public:
  explicit TinyNetworkImpl(int64_t out_channels = 1, int64_t width = 4)
      : conv_(register_module("conv",
                              torch::nn::Conv2d(torch::nn::Conv2dOptions(3, width, 3).padding(1)))),
        norm_(register_module("norm", torch::nn::BatchNorm2d(width))),
        head_(register_module("head", torch::nn::Conv2d(width, out_channels, 1))) {}

  torch::Tensor forward(torch::Tensor images) override {
    torch::Tensor x = torch::relu(norm_->forward(conv_->forward(images)));
    // As the real models draw their dropout: from the thread's generator the trainer seeds.
    return head_->forward(models::ThreadSeededDropout(x, 0.1, is_training()));
  }

  std::vector<models::StageSummary> summary() const override { return {}; }

 private:
  torch::nn::Conv2d conv_;
  torch::nn::BatchNorm2d norm_;
  torch::nn::Conv2d head_;
};

inline models::Network MakeTinyNetwork(int64_t out_channels = 1, int64_t width = 4) {
  torch::manual_seed(7);
  return std::make_shared<TinyNetworkImpl>(out_channels, width);
}

// Bright squares on a dark background; the mask marks the squares. Learnable in a few epochs.
inline TensorDataset MakeSquares(int64_t count, int64_t size, uint64_t seed) {
  torch::manual_seed(seed);
  TensorDataset data;
  data.task = Task::kBinarySegmentation;
  data.class_names = {"square"};
  data.images = torch::randint(0, 60, {count, 3, size, size}, torch::kUInt8);
  data.targets = torch::zeros({count, size, size}, torch::kUInt8);
  for (int64_t i = 0; i < count; ++i) {
    const int64_t y = (i * 7) % (size / 2), x = (i * 5) % (size / 2);
    data.images[i].slice(1, y, y + size / 3).slice(2, x, x + size / 3).fill_(200);
    data.targets[i].slice(0, y, y + size / 3).slice(1, x, x + size / 3).fill_(1);
  }
  return data;
}

}  // namespace selene::train::testing
