// A segmentation model's logits (at its S x S input) turned into per-pixel answers at the input
// image's own size: the class mask and, when asked, probabilities and logits. The logits are
// resized bilinearly (half-pixel centres, as cv::resize INTER_LINEAR and torch's bilinear with
// align_corners false) one output row at a time, so a large image never holds K full-size float
// planes unless the caller asks for them. selene.v1 Segment and the Open Inference Protocol
// both answer from here, so their masks are the same.
#pragma once

#include <opencv2/core.hpp>

#include <cstdint>
#include <vector>

#include "server/serving/dynamic_batcher.h"

namespace selene::serving {

struct SegmentationMapRequest {
  // Binary: one foreground logit per pixel, foreground where sigmoid(logit) >= threshold.
  // Otherwise K class logits per pixel and the argmax (ties keep the lower id, as torch).
  bool binary = true;
  double threshold = 0.5;
  // 8-bit probability per pixel: of the foreground (binary) or of the chosen class.
  bool probability_bytes = false;
  bool probabilities = false;  // float [K, H, W]: sigmoid (binary, K = 1) or softmax
  bool logits = false;         // float [K, H, W], resized
};

struct SegmentationMaps {
  cv::Mat mask;                       // CV_8UC1, class id per pixel (binary: 0 or 1)
  std::vector<int64_t> class_pixels;  // pixels per class id (binary: background, foreground)
  cv::Mat probability_bytes;          // CV_8UC1, when asked
  std::vector<float> probabilities;   // when asked
  std::vector<float> logits;          // when asked
};

// `output`: logits [K, S, S] (K = 1 for binary, at most 256 classes), already checked.
SegmentationMaps MakeSegmentationMaps(const ModelOutput& output, cv::Size size,
                                      const SegmentationMapRequest& request);

}  // namespace selene::serving
