// A data set decoded into memory, before the train/val split: what the decoder produces and the
// disk cache stores, with the decode-time findings the summary needs.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace selene::data {

struct DecodedSet {
  torch::Tensor images;   // uint8 [N, 3, S, S]
  torch::Tensor targets;  // int64 [N] labels | uint8 [N, S, S] {0, 1} | int64 [N, S, S] ids
  std::vector<std::string> names;  // per item: image path relative to the data set folder
  std::vector<uint8_t> in_val;     // per item: the data set's own split
  // Decode-time findings (items that failed are not in the tensors).
  std::vector<std::string> unreadable;         // "path: reason"
  std::map<std::string, int64_t> image_sizes;  // native "WxH" -> usable images
  int64_t empty_masks = 0;
  std::vector<std::string> empty_mask_examples;
  int64_t unmatched_colour_pixels = 0;
  std::vector<std::string> warnings;

  int64_t size() const { return static_cast<int64_t>(names.size()); }
};

}  // namespace selene::data
