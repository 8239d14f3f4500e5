// Which choices of a job spec go together: data kinds and the tasks they feed, loss kinds and
// their families. Defaults and validation both follow these rules.
#pragma once

#include "selene/v1/job_spec.pb.h"

namespace selene::spec {

inline bool IsSynthetic(v1::DataKind kind) {
  return kind == v1::DATA_KIND_SYNTHETIC_MOON || kind == v1::DATA_KIND_SYNTHETIC_SHAPES ||
         kind == v1::DATA_KIND_SYNTHETIC_SHAPES_SEGMENTATION;
}

inline bool IsSegmentation(v1::Task task) {
  return task == v1::TASK_BINARY_SEGMENTATION || task == v1::TASK_MULTICLASS_SEGMENTATION;
}

// The tasks each data kind can feed.
inline bool KindFitsTask(v1::DataKind kind, v1::Task task) {
  switch (kind) {
    case v1::DATA_KIND_SYNTHETIC_MOON:
    case v1::DATA_KIND_MOON:
      return task == v1::TASK_BINARY_SEGMENTATION;
    case v1::DATA_KIND_SYNTHETIC_SHAPES:
    case v1::DATA_KIND_TINY_IMAGENET:
      return task == v1::TASK_CLASSIFICATION;
    case v1::DATA_KIND_SYNTHETIC_SHAPES_SEGMENTATION:
      return task == v1::TASK_MULTICLASS_SEGMENTATION;
    case v1::DATA_KIND_SEGMENTATION_FOLDER:
      return IsSegmentation(task);
    default:
      return true;
  }
}

inline bool IsBceLoss(v1::LossKind kind) {
  return kind == v1::LOSS_KIND_BCE || kind == v1::LOSS_KIND_BCE_DICE;
}
inline bool IsCrossEntropyLoss(v1::LossKind kind) {
  return kind == v1::LOSS_KIND_CROSS_ENTROPY || kind == v1::LOSS_KIND_CROSS_ENTROPY_DICE;
}
inline bool IsDiceLoss(v1::LossKind kind) {
  return kind == v1::LOSS_KIND_DICE || kind == v1::LOSS_KIND_BCE_DICE ||
         kind == v1::LOSS_KIND_CROSS_ENTROPY_DICE;
}

}  // namespace selene::spec
