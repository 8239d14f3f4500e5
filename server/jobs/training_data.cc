#include "server/jobs/training_data.h"

#include <torch/torch.h>

#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/data/dataset_loader.h"
#include "server/train/synthetic_data.h"

namespace selene::jobs {

using spec::DataKind;
using spec::DataRequest;

namespace {

data::DatasetKind ToDatasetKind(DataKind kind) {
  switch (kind) {
    case DataKind::kMoon:
      return data::DatasetKind::kMoon;
    case DataKind::kSegmentationFolder:
      return data::DatasetKind::kSegmentationFolder;
    default:
      return data::DatasetKind::kTinyImageNet;
  }
}

data::DatasetOptions ToDatasetOptions(const DataRequest& request, const std::string& data_root,
                                      const DataLoadOptions& load) {
  data::DatasetOptions options;
  options.kind = ToDatasetKind(request.kind);
  options.task = request.task;
  options.data_root = data_root;
  options.path = request.path;
  options.num_classes = request.num_classes;
  options.class_ids = request.class_ids;
  options.image_size = request.image_size;
  options.validation_fraction = request.validation_fraction;
  options.validation_fraction_set = request.validation_fraction_set;
  options.split_seed = request.split_seed;
  options.ignore_index = request.ignore_index;
  options.decode_threads = load.decode_threads;
  options.cache_dir = load.cache_dir;
  options.stop = load.stop;
  if (load.on_progress) {
    options.on_progress = [callback = load.on_progress](const data::DecodeProgress& progress) {
      callback(progress.done, progress.total);
    };
  }
  return options;
}

train::TensorDataset GenerateSynthetic(const DataRequest& request, const std::atomic<bool>* stop) {
  if (request.kind == DataKind::kSyntheticMoon) {
    train::SyntheticMoonOptions options;
    options.count = request.num_samples;
    options.image_size = request.image_size;
    options.seed = request.split_seed;
    options.stop = stop;
    return train::MakeSyntheticMoon(options);
  }
  train::SyntheticShapesOptions options;
  options.count = request.num_samples;
  options.num_classes = request.num_classes;
  options.image_size = request.image_size;
  options.seed = request.split_seed;
  options.stop = stop;
  return request.kind == DataKind::kSyntheticShapes
             ? train::MakeSyntheticShapes(options)
             : train::MakeSyntheticShapesSegmentation(options);
}

// Class balance of generated data, counted the way the file readers count theirs: images per
// class for classification, pixels per class (ignored pixels apart) for segmentation.
data::DataSummary SummarizeSynthetic(const DataRequest& request,
                                     const train::TrainValSplit& split) {
  data::DataSummary summary;
  summary.dataset = spec::DataKindName(request.kind);
  summary.task = train::TaskName(request.task);
  summary.root = "(generated in memory)";
  summary.split =
      absl::StrCat("fraction ", request.validation_fraction, ", seed ", request.split_seed);
  summary.train_items = split.train.size();
  summary.val_items = split.val.size();
  summary.images_found = summary.train_items + summary.val_items;
  summary.storage_size = request.image_size;
  summary.image_sizes[absl::StrCat(request.image_size, "x", request.image_size)] =
      summary.images_found;
  summary.class_names = split.train.class_names;
  const int64_t classes = std::max<int64_t>(split.train.num_classes(), 1);
  std::vector<int64_t> counts(split.train.task == train::Task::kBinarySegmentation ? 2 : classes,
                              0);
  for (const train::TensorDataset* part : {&split.train, &split.val}) {
    if (part->size() == 0) continue;
    torch::Tensor targets = part->targets.to(torch::kLong).flatten();
    if (split.train.task != train::Task::kClassification) {
      const torch::Tensor ignored = targets.eq(part->ignore_index);
      summary.ignored_pixels += ignored.sum().item<int64_t>();
      targets = targets.masked_select(ignored.logical_not());
    }
    const torch::Tensor bins = torch::bincount(targets, {}, static_cast<int64_t>(counts.size()));
    for (size_t c = 0; c < counts.size(); ++c) counts[c] += bins[c].item<int64_t>();
    if (split.train.task == train::Task::kBinarySegmentation) {
      const torch::Tensor per_image = part->targets.flatten(1).sum(1);
      summary.empty_masks += per_image.eq(0).sum().item<int64_t>();
    }
  }
  if (split.train.task == train::Task::kClassification) {
    summary.images_per_class = counts;
  } else {
    summary.masks_found = summary.images_found;
    summary.pixels_per_class = counts;  // binary: {background, class_names[0]}
  }
  return summary;
}

}  // namespace

StatusOr<TrainingData> LoadTrainingData(const DataRequest& request, const std::string& data_root,
                                        const DataLoadOptions& options) {
  if (!request.synthetic()) {
    SELENE_ASSIGN_OR_RETURN(data::LoadedDataset loaded,
                            data::LoadDataset(ToDatasetOptions(request, data_root, options)));
    TrainingData result;
    result.split = std::move(loaded.split);
    result.summary = std::move(loaded.summary);
    result.cache_hit = loaded.cache_hit;
    return result;
  }
  try {
    TrainingData result;
    train::TensorDataset generated = GenerateSynthetic(request, options.stop);
    // A stopped generator returns what it had made: not a data set anyone asked for.
    if (options.stop != nullptr && options.stop->load()) {
      return CancelledError(
          absl::StrCat("cancelled while generating data.kind ", spec::DataKindName(request.kind)));
    }
    result.split = train::SplitDataset(generated, request.validation_fraction, request.split_seed);
    result.summary = SummarizeSynthetic(request, result.split);
    return result;
  } catch (const std::exception& e) {
    return InternalError(absl::StrCat("data.kind ", spec::DataKindName(request.kind),
                                      ": generating failed: ", e.what()));
  }
}

}  // namespace selene::jobs
