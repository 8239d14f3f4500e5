// Job specs (selene.v1.JobSpec): loading from JSON, `field.path=value` overrides by reflection,
// defaults, validation that names the field path and reason of every bad value, and the
// torch-free half of the translation (model spec, data request). The training-loop half
// (TrainerOptions, which needs torch) is server/jobs/training_plan.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/status.h"
#include "models/model_options.h"
#include "selene/v1/job_spec.pb.h"
#include "server/data/augmentation_options.h"
#include "server/train/task.h"

namespace selene::jobs {

// Upper bounds ValidateJobSpec enforces, documented in job_spec.proto. They keep every size and
// count computed from a spec finite and far from int64 overflow; whether a job within them fits
// a machine is the server's memory check at submit (memory_estimate.h).
inline constexpr int64_t kMaxEpochs = 100000;
inline constexpr int64_t kMaxBatchSize = 65536;
inline constexpr int64_t kMinImageSize = 8;
inline constexpr int64_t kMaxImageSize = 4096;
inline constexpr int64_t kMaxNumSamples = 1000000;  // synthetic data sets
inline constexpr int64_t kMaxClasses = 65536;
inline constexpr int64_t kMaxInChannels = 64;
// Any channel width: base widths, their caps, stem and stage widths. Wide enough that a width
// is refused for the memory it needs on the machine at hand, not by a fixed rule.
inline constexpr int64_t kMaxWidth = int64_t{1} << 20;
inline constexpr int64_t kMaxStageBlocks = 1024;

// training.device value that lets the server pick any of its devices (as does an empty one);
// selene-train runs it on the CPU.
inline constexpr char kAnyDevice[] = "auto";

// Parses a spec in protobuf's JSON mapping (proto field names or lowerCamelCase). Enum values
// may be short and in any case ("adamw" for OPTIMIZER_KIND_ADAMW). Errors name `source` (a
// file name, "spec", ...) and the parser's message. Integers above 2^53 must be JSON strings.
StatusOr<v1::JobSpec> ParseJobSpecJson(absl::string_view json, absl::string_view source = "spec");

// Reads and parses a JSON spec file; a missing or unreadable file is NotFound naming the path.
StatusOr<v1::JobSpec> LoadJobSpecFile(const std::string& path);

// The spec as JSON with proto field names and full enum names, only fields that are set: the
// exact spec (spec.json, checkpoint metadata), which ParseJobSpecJson reads back unchanged.
std::string JobSpecToJson(const v1::JobSpec& spec, bool pretty = true);

// Sets one field by dotted path, e.g. "training.optimizer.lr=0.01". Path components may be
// proto names or JSON names. Values: numbers, bools (true/false/1/0/yes/no), strings, enum
// names (any case, with or without the enum's prefix, or the number), comma lists for repeated
// fields (an empty value clears them). Message fields on the way are created; a oneof member
// other than the one already set is refused. Errors (InvalidArgument) name the first unknown
// path component with the valid fields at that level, or the field and its expected type.
Status ApplyOverride(v1::JobSpec* spec, absl::string_view assignment);
Status ApplyOverrides(v1::JobSpec* spec, const std::vector<std::string>& assignments);

// The spec with every unset field that has a default filled in: defaults that depend on other
// fields (lr by optimizer, loss and monitor by task, class count by data kind, model outputs
// from the class count, image size by data kind) are resolved here, in one place. Fields that
// only apply to another choice (e.g. momentum under AdamW) stay unset. Idempotent.
v1::JobSpec ResolveDefaults(const v1::JobSpec& spec);

// Checks every field of the spec (with its defaults resolved) and returns InvalidArgument
// listing each problem as "<field path>: <reason>", joined by "; ", e.g.
// "training.batch_size: 0 must be in [1, 65536]; model: no family set (classifier, unet,
// encoder_unet)". Unknown enum values and non-finite floats anywhere in the tree are reported
// first, alone ("training.optimizer.lr: inf is not a finite number").
Status ValidateJobSpec(const v1::JobSpec& spec);

// The class count the data will have (binary: 1; synthetic_shapes_segmentation: shapes plus
// background), or 0 when only the data set itself can tell.
int64_t ExpectedNumClasses(const v1::JobSpec& spec);

train::Task ToTask(v1::Task task);

// What data a run needs, with defaults resolved: the plain struct the runner hands to the
// synthetic generators now and to the data readers (server/data/) later.
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

// Both require a spec that passed ValidateJobSpec (they resolve defaults themselves).
DataRequest ResolveDataRequest(const v1::JobSpec& spec);
models::NetworkSpec ResolveNetworkSpec(const v1::JobSpec& spec);

}  // namespace selene::jobs
