// Synthetic data sets made with LibTorch alone, deterministic by seed, so the demo and the tests
// need no download. Both are learnable but not trivial. Image i depends only on (seed, i), not
// on the count or the thread count. Generation runs its torch ops on one intra-op thread (a
// short-lived helper thread when more are configured): hundreds of small ops gain nothing from
// OpenMP and lose much to its fork and join on a busy machine.
#pragma once

#include <atomic>
#include <cstdint>

#include "server/train/tensor_dataset.h"

namespace selene::train {

// Lunar terrain like the MOON renders: a dark sky band at the top (varying, sometimes absent),
// grey ground in perspective with relief shading, craters and bright patches, and shaded rocks
// of many sizes, smaller towards the horizon, casting shadows away from one sun per image.
// Binary targets: uint8 [N, H, W], 1 = rock (not its shadow); rocks cover about 3-13% of an
// image (mean ~7.5%). Images: uint8 [N, 3, H, W], near grey with a slight tint per image.
struct SyntheticMoonOptions {
  int64_t count = 512;
  int64_t image_size = 64;  // square
  int64_t min_rocks = 3;
  int64_t max_rocks = 14;
  uint64_t seed = 1;
  // Checked between chunks of images: once set, generation stops and returns a partial set,
  // which the caller discards. A 4096-pixel image is one chunk, so a stop waits for one image.
  const std::atomic<bool>* stop = nullptr;
};
TensorDataset MakeSyntheticMoon(const SyntheticMoonOptions& options);

// K classes that differ in shape (disc, square, triangle, cross, ring, ...), texture (flat,
// stripes, checks, noise) and colour palette, with random position, scale and background noise.
// Classification targets: int64 [N], balanced (image i has class i mod K); every colour palette
// is shared by two classes, so mean colour does not give the class away.
struct SyntheticShapesOptions {
  int64_t count = 1000;
  int64_t num_classes = 6;  // 2 to 12
  int64_t image_size = 64;
  uint64_t seed = 1;
  const std::atomic<bool>* stop = nullptr;  // as in SyntheticMoonOptions
};
TensorDataset MakeSyntheticShapes(const SyntheticShapesOptions& options);

// Multi-class version of the shapes: two to four smaller shapes per image, every pixel labelled
// with the class of the shape on top, shifted by one: 0 = background, shape class c -> c + 1,
// so class_names = {"background", "disc", ...} (K + 1 names). Every pixel is labelled (no void
// region): ignore_index stays -100. Targets: int64 [N, H, W].
TensorDataset MakeSyntheticShapesSegmentation(const SyntheticShapesOptions& options);

// Splits off the last `val_fraction` of a shuffled (by seed) index order: stable, no overlap,
// each part kept in data set order. A fraction > 0 leaves at least one image on each side.
TrainValSplit SplitDataset(const TensorDataset& dataset, double val_fraction, uint64_t seed);

}  // namespace selene::train
