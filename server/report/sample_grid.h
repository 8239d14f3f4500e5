// samples.png: what a model sees and says, for a person to judge at a glance. Segmentation:
// rows of input | prediction | ground truth; classification: a grid of images captioned with
// predicted and true labels.
#pragma once

#include <ATen/core/Tensor.h>
#include <opencv2/core/types.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "server/train/task.h"

namespace selene::report {

struct SampleSet {
  train::Task task = train::Task::kBinarySegmentation;
  // uint8 [N, C, H, W], C = 1 (grey) or 3 (RGB), as stored: the model's input before
  // normalisation. Float images in [0, 1] or [0, 255] are accepted too.
  at::Tensor images;
  // Classification: int64 [N] class ids. Segmentation: integer [N, H, W] (or [N, 1, H, W])
  // class ids, binary 0/1.
  at::Tensor predictions;
  at::Tensor truths;  // same layout as predictions; segmentation may contain ignore_index
  std::vector<std::string> class_names;  // binary: {"rock"} (the foreground's name) or empty
  int64_t ignore_index = -100;
};

// The colour (BGR) a multi-class mask uses for class `id`: black for 0 (usually background),
// then distinct saturated colours; never grey, which marks ignored pixels.
cv::Scalar ClassColour(int64_t id);

// Segmentation: the first 5 samples (fewer if there are fewer), one per row: input |
// prediction | ground truth, with column titles, the sample's Dice (binary) or pixel accuracy
// (multi-class) under the prediction, and a legend strip. Masks: binary white on black;
// multi-class in ClassColour; ignored pixels grey-hatched. Classification: the first 16
// samples in a 4-column grid, images at least 128 px, "pred: X" / "true: Y" under each, green
// when right, red when wrong, framed in the same colour. Images are shown at least 192 px
// (segmentation) or 128 px (classification) on their long side, upscaled by a whole factor
// with nearest neighbour; images over 256 px are scaled down to 256. InvalidArgument names a
// tensor whose shape or type does not fit.
Status WriteSamplesPng(const std::string& path, const SampleSet& samples);

}  // namespace selene::report
