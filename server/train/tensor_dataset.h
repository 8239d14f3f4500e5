// A whole data set held in memory as uint8 tensors: the decoded-image cache every reader
// (synthetic generators now, file readers later) produces and the batch loader consumes.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "server/train/task.h"

namespace selene::train {

struct TensorDataset {
  Task task = Task::kClassification;
  torch::Tensor images;   // uint8 [N, C, H, W], C = 3 (or 1 for grey), values 0..255
  torch::Tensor targets;  // int64 [N] labels | uint8 [N, H, W] binary masks | int64 [N, H, W] ids
  std::vector<std::string> class_names;  // classification and multi-class; {"rock"} for binary
  int64_t ignore_index = -100;           // multi-class: label value left out of loss and metrics

  int64_t size() const { return images.defined() ? images.size(0) : 0; }
  int64_t num_classes() const { return static_cast<int64_t>(class_names.size()); }
};

// Per-channel statistics used to normalise uint8 images into the network's input range.
struct Normalization {
  std::vector<double> mean = {0.5, 0.5, 0.5};  // in [0, 1] units
  std::vector<double> std = {0.25, 0.25, 0.25};
};

struct TrainValSplit {
  TensorDataset train;
  TensorDataset val;
};

}  // namespace selene::train
