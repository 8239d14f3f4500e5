// The torch-free half of the translation from a job spec to the engine's options: the task, the
// network (models::NetworkSpec) and the data request. The training loop's half (TrainerOptions,
// which needs torch) is spec/trainer_options.h. Both take a spec whose defaults are resolved;
// ResolvedJobSpec (spec/resolved_job_spec.h) holds their results.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/model_options.h"
#include "selene/v1/job_spec.pb.h"
#include "server/data/augmentation_options.h"
#include "server/train/task.h"

namespace selene::spec {

// The engine's task for a spec's task. A resolved spec always has one; TASK_UNSPECIFIED (an
// old run_summary.json may hold it) reads as classification.
train::Task ToTrainTask(v1::Task task);

// What data a run needs: the plain struct handed to the synthetic generators and to the data
// readers (server/data/).
enum class DataKind {
  kSyntheticMoon,
  kSyntheticShapes,
  kSyntheticShapesSegmentation,
  kTinyImageNet,
  kMoon,
  kSegmentationFolder,
};

std::string DataKindName(DataKind kind);  // "synthetic_moon", "tiny_imagenet", ...

struct DataRequest {
  train::Task task = train::Task::kClassification;
  DataKind kind = DataKind::kSyntheticMoon;
  std::string path;                    // relative to the data root; empty for synthetic kinds
  int64_t num_classes = 0;             // 0 = all the data set has (class_ids empty)
  std::vector<std::string> class_ids;  // named classes, in this order
  int64_t num_samples = 0;             // synthetic only
  int64_t image_size = 64;
  double validation_fraction = 0.2;
  bool validation_fraction_set = false;  // false: a data set's own validation split wins
  uint64_t split_seed = 1;
  int64_t ignore_index = -100;  // from training.loss: label id the masks use for "void"
  data::AugmentationOptions augmentation;
  std::vector<double> normalize_mean;  // empty = the engine's default
  std::vector<double> normalize_std;

  bool synthetic() const;
};

// `resolved`: a spec with its defaults filled in (spec/defaults.h) that passed validation.
DataRequest ToDataRequest(const v1::JobSpec& resolved);

// The network `resolved` describes. Its field_prefix is "model.", so the model factory names
// the job spec's fields ("model.unet.base_width: ...") in its errors.
models::NetworkSpec ToNetworkSpec(const v1::JobSpec& resolved);

}  // namespace selene::spec
