// One trained model ready to serve: its network rebuilt from the job's spec with the checkpoint's
// weights, in eval mode, behind its own dynamic batcher, plus what it is (task, classes, input
// size, normalisation). Also describes a record without loading it, for ListModels. The header
// stays torch-free so the API layer can include it cheaply.
#pragma once

#include <opencv2/core.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "common/status.h"
#include "models/model_options.h"
#include "selene/v1/job_spec.pb.h"
#include "server/serving/dynamic_batcher.h"
#include "server/serving/model_catalog.h"
#include "spec/resolved_job_spec.h"

namespace selene::serving {

// What a record's model is, known without loading its weights.
struct ModelDescription {
  explicit ModelDescription(spec::ResolvedJobSpec resolved) : spec(std::move(resolved)) {}

  spec::ResolvedJobSpec spec;  // the record's, or the checkpoint's metadata
  v1::Task task = v1::TASK_UNSPECIFIED;
  models::NetworkSpec network;  // encoder checkpoint cleared: best.pt holds every weight
  std::string family;           // "classifier", "unet", "encoder_unet"
  int64_t input_size = 0;       // data.image_size
  int64_t in_channels = 0;
  int64_t num_outputs = 0;  // classes (classification, multi-class), 1 (binary)
  // From class_names.txt next to the checkpoint when it has num_outputs lines; else
  // "class_0".. ("foreground" for binary).
  std::vector<std::string> class_names;
  std::vector<double> normalize_mean;  // per channel (or one for all), [0, 1] units
  std::vector<double> normalize_std;
};

// InvalidArgument naming the job when its spec has no task or model family (or cannot be read
// from the checkpoint).
StatusOr<ModelDescription> DescribeModel(const ServableModelRecord& record);

// How a loaded network is prepared for inference. Folding and channels-last are on by default:
// together they make the default U-Net's forward pass about 1.2x faster on CPU than plain eval mode
// (docs/benchmarks.md).
struct ServableModelOptions {
  // BatchNorm folded into the convolutions (models::NetworkImpl::fold_batch_norms): same outputs
  // to float rounding, one pass over each activation fewer.
  bool fold_batch_norms = true;
  // Convolution weights and the input batch in channels-last (NHWC) layout: the layout oneDNN's
  // convolutions compute in, so no reorder per layer, and the decoded HWC pixels need no
  // transpose.
  bool channels_last = true;
  // The forward pass under autocast to bfloat16 (train::AutocastScope); logits come back
  // float32. 1.5-1.75x faster for the default U-Net on an AMX CPU (docs/benchmarks.md), slower
  // on CPUs without bf16 units; masks may differ from fp32 at pixels whose logit is near 0.
  // Off by default.
  bool bfloat16 = false;
};

class ServableModel {
 public:
  // Builds the network, loads record.checkpoint_path, switches to eval mode, prepares it as
  // `model_options` asks and starts the batcher (named "model <job id>"). Internal naming the
  // job and the path when the checkpoint is missing or does not fit the spec's network.
  static StatusOr<std::shared_ptr<ServableModel>> Load(const ServableModelRecord& record,
                                                       DynamicBatcherOptions batcher_options,
                                                       ServableModelOptions model_options = {});

  // Stops the batcher (queued requests still run) before the network goes.
  ~ServableModel();
  ServableModel(const ServableModel&) = delete;
  ServableModel& operator=(const ServableModel&) = delete;

  const ServableModelRecord& record() const { return record_; }
  const std::string& job_id() const { return record_.job_id; }
  const ModelDescription& description() const { return description_; }
  v1::Task task() const { return description_.task; }
  int64_t parameters() const { return parameters_; }

  // `image`: CV_8UC(in_channels), input_size x input_size, RGB. Queues it on the batcher and
  // waits: logits [1, S, S] (binary), [K, S, S] (multi-class) or [K] (classification).
  StatusOr<ModelOutput> Infer(cv::Mat image, absl::Time deadline = absl::InfiniteFuture());

  // Infer for several images: all are queued at once, so they can share a batch with each other
  // and with other requests, then awaited. One output per image, in order, or the first error.
  StatusOr<std::vector<ModelOutput>> InferAll(std::vector<cv::Mat> images,
                                              absl::Time deadline = absl::InfiniteFuture());

  // One forward pass over `images` (as for Infer) on the calling thread, under InferenceMode:
  // the batcher's batch function. Not to be called concurrently with itself.
  StatusOr<std::vector<ModelOutput>> RunBatch(const std::vector<cv::Mat>& images);

  BatcherStats batcher_stats() const { return batcher_->stats(); }
  const DynamicBatcherOptions& batcher_options() const { return batcher_->options(); }

 private:
  struct Torch;  // the network, its normalisation and layout (torch types)

  ServableModel(ServableModelRecord record, ModelDescription description);

  const ServableModelRecord record_;
  const ModelDescription description_;
  std::unique_ptr<Torch> torch_;
  int64_t parameters_ = 0;
  // Last: destroyed (stopped) first, while the network it runs is still there.
  std::unique_ptr<DynamicBatcher> batcher_;
};

}  // namespace selene::serving
