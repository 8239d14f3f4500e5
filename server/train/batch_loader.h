// Turns a TensorDataset into device batches: shuffled by (seed, epoch), converted to float on the
// target device, resized to the model's input, augmented by an optional batched transform, then
// normalised, with the next batch prepared on a background thread while the current one trains.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "server/train/tensor_dataset.h"

namespace selene::train {

struct Batch {
  torch::Tensor images;   // float [B, C, H, W] on the device, normalised
  torch::Tensor targets;  // on the device: int64 labels/ids, or float {0,1} masks [B, H, W]
  torch::Tensor indices;  // int64 [B] positions in the data set (CPU)
};

// A batched transform applied to training batches (images and masks share geometry). It sees
// `images` as float [B, C, H, W] in [0, 1] on the device, already resized to `resize_to`, and
// `targets` as the loader makes them (see Batch); normalisation comes after it, so colour
// operations work in [0, 1] space. It may change the tensors in place or replace them, keeping
// shapes, dtypes and device. `generator_seed` is derived from (seed, epoch, batch index) so runs
// repeat exactly. With prefetch it runs on the loader's thread, whose torch ops use one intra-op
// thread.
using BatchTransform = std::function<void(Batch& batch, uint64_t generator_seed)>;

struct BatchLoaderOptions {
  int64_t batch_size = 32;
  bool shuffle = true;
  bool drop_last = false;
  uint64_t seed = 1;
  torch::Device device = torch::kCPU;
  Normalization normalization;
  // > 0: images are resized on the device to resize_to x resize_to (bilinear), segmentation masks
  // with nearest, before the transform; 0 = as stored. Lets the cache keep images small.
  int64_t resize_to = 0;
  BatchTransform transform;  // empty = none
  bool prefetch = true;      // prepare the next batch on a background thread
};

class BatchLoader {
 public:
  // `dataset` must outlive the loader.
  BatchLoader(const TensorDataset& dataset, BatchLoaderOptions options);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  // Starts a pass over the data; the order depends only on (seed, epoch).
  void StartEpoch(int64_t epoch);
  // The next batch of the pass, or nullopt at its end. An error making a batch (a throwing
  // transform, say) is rethrown here, after the batches made before it; the pass then ends.
  std::optional<Batch> Next();

  int64_t batches_per_epoch() const;
  // Seconds Next() spent waiting for a batch in the current pass (the data-wait share).
  double wait_seconds() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Converts a uint8 image batch [B, C, H, W] to normalised float on `device`.
torch::Tensor NormalizeImages(const torch::Tensor& images_u8, const Normalization& norm,
                              torch::Device device);

// Normalises, in place, a float image batch [B, C, H, W] in [0, 1] units; returns it.
torch::Tensor NormalizeUnitImages(torch::Tensor images, const Normalization& norm);

}  // namespace selene::train
