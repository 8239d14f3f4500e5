// The three kinds of problem Selene trains, shared by data sets, losses, metrics and the Trainer.
#pragma once

#include <string>

namespace selene::train {

enum class Task {
  kClassification,          // targets: int64 [N] class ids; logits [N, K]
  kBinarySegmentation,      // targets: uint8/float [N, H, W] in {0, 1}; logits [N, 1, H, W]
  kMultiClassSegmentation,  // targets: int64 [N, H, W] class ids (or ignore); logits [N, K, H, W]
};

inline std::string TaskName(Task task) {
  switch (task) {
    case Task::kClassification:
      return "classification";
    case Task::kBinarySegmentation:
      return "binary_segmentation";
    case Task::kMultiClassSegmentation:
      return "multiclass_segmentation";
  }
  return "unknown";
}

}  // namespace selene::train
