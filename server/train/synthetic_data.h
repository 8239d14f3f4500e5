// Synthetic data sets made with LibTorch alone, deterministic by seed, so the demo and the tests
// need no download. Both are learnable but not trivial.
#pragma once

#include <cstdint>

#include "server/train/tensor_dataset.h"

namespace selene::train {

// Lunar terrain like the MOON renders: a dark sky band at the top, noisy grey ground with
// large-scale shading, and bright shaded rocks of many sizes with shadows on one side.
// Binary targets: uint8 [N, H, W], 1 = rock.
struct SyntheticMoonOptions {
  int64_t count = 512;
  int64_t image_size = 64;  // square
  int64_t min_rocks = 3;
  int64_t max_rocks = 14;
  uint64_t seed = 1;
};
TensorDataset MakeSyntheticMoon(const SyntheticMoonOptions& options);

// K classes that differ in shape (disc, square, triangle, cross, ring, ...), texture (flat,
// stripes, checks, noise) and colour palette, with random position, scale and background noise.
// Classification targets: int64 [N].
struct SyntheticShapesOptions {
  int64_t count = 1000;
  int64_t num_classes = 6;  // at most 12
  int64_t image_size = 64;
  uint64_t seed = 1;
};
TensorDataset MakeSyntheticShapes(const SyntheticShapesOptions& options);

// Multi-class version of the shapes: every pixel labelled with its shape's class (0 =
// background), for multi-class segmentation tests and demos. Targets: int64 [N, H, W].
TensorDataset MakeSyntheticShapesSegmentation(const SyntheticShapesOptions& options);

// Splits off the last `val_fraction` of a shuffled (by seed) index order: stable, no overlap.
TrainValSplit SplitDataset(const TensorDataset& dataset, double val_fraction, uint64_t seed);

}  // namespace selene::train
