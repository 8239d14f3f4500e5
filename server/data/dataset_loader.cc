#include "server/data/dataset_loader.h"

#include <c10/util/Exception.h>
#include <opencv2/core.hpp>

#include <chrono>
#include <cmath>
#include <exception>
#include <new>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "server/data/data_root.h"
#include "server/data/dataset_decoder.h"
#include "server/data/decoded_cache.h"
#include "server/data/item_split.h"
#include "server/data/moon_reader.h"
#include "server/data/segmentation_folder_reader.h"
#include "server/data/tiny_imagenet_reader.h"

namespace selene::data {

std::string DatasetKindName(DatasetKind kind) {
  switch (kind) {
    case DatasetKind::kTinyImageNet:
      return "tiny_imagenet";
    case DatasetKind::kMoon:
      return "moon";
    case DatasetKind::kSegmentationFolder:
      return "segmentation_folder";
  }
  return "unknown";
}

namespace {

constexpr size_t kProblemsInError = 3;

Status ValidateOptions(const DatasetOptions& options) {
  if (options.image_size < 4 || options.image_size > 4096) {
    return InvalidArgumentError(
        absl::StrCat("image_size ", options.image_size, " must be in 4..4096"));
  }
  if (!(options.validation_fraction >= 0.0 && options.validation_fraction < 1.0)) {
    return InvalidArgumentError(
        absl::StrCat("validation_fraction ", options.validation_fraction, " must be in [0, 1)"));
  }
  if (options.num_classes < 0) {
    return InvalidArgumentError(
        absl::StrCat("num_classes ", options.num_classes, " must be >= 0 (0 = all)"));
  }
  if (options.decode_threads < 0) {
    return InvalidArgumentError(absl::StrCat("decode_threads ", options.decode_threads,
                                             " must be >= 0 (0 = hardware threads)"));
  }
  return OkStatus();
}

StatusOr<DatasetScan> Scan(const DatasetOptions& options, const std::string& folder,
                           const std::string& root) {
  switch (options.kind) {
    case DatasetKind::kTinyImageNet:
      return ScanTinyImageNet(folder, root, options);
    case DatasetKind::kMoon:
      return ScanMoon(folder, root, options);
    case DatasetKind::kSegmentationFolder:
      return ScanSegmentationFolder(folder, root, options);
  }
  return InvalidArgumentError("unknown data set kind");
}

// The first few problems of a summary, "" when it has none.
std::string FirstProblems(const DataSummary& summary) {
  std::vector<std::string> problems;
  for (const auto* list : {&summary.unreadable, &summary.unpaired, &summary.warnings}) {
    for (const std::string& problem : *list) {
      if (problems.size() == kProblemsInError) break;
      problems.push_back(problem);
    }
  }
  const size_t total =
      summary.unreadable.size() + summary.unpaired.size() + summary.warnings.size();
  std::string text = absl::StrJoin(problems, "; ");
  if (total > problems.size())
    absl::StrAppend(&text, "; ... and ", total - problems.size(), " more");
  return text;
}

// Why a data set with nothing usable is refused: what was found, then the first problems.
std::string Refusal(const std::string& folder, const DataSummary& summary) {
  std::string text = absl::StrCat("no usable items in ", folder, ": ");
  if (summary.images_found == 0) {
    absl::StrAppend(&text, "no image files found");
  } else {
    absl::StrAppend(&text, summary.images_found, " image files found, none usable");
  }
  const std::string problems = FirstProblems(summary);
  if (!problems.empty()) absl::StrAppend(&text, "; ", problems);
  return text;
}

std::vector<int64_t> ToVector(const torch::Tensor& counts) {
  const torch::Tensor c = counts.to(torch::kInt64).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

void CountClasses(const DecodedSet& set, const DatasetScan& scan, int64_t ignore_index,
                  DataSummary* summary) {
  const int64_t k = scan.num_classes;
  if (scan.mask_mode == MaskMode::kNone) {
    summary->images_per_class = ToVector(torch::bincount(set.targets, {}, k));
    return;
  }
  if (set.targets.scalar_type() == torch::kUInt8) {
    const int64_t positive = set.targets.sum().item<int64_t>();
    summary->pixels_per_class = {set.targets.numel() - positive, positive};
    return;
  }
  // Ignored pixels are counted apart: moved to an extra bin K, then dropped.
  const torch::Tensor ignored = set.targets.eq(ignore_index);
  summary->ignored_pixels = ignored.sum().item<int64_t>();
  const torch::Tensor binned =
      torch::where(ignored, torch::full({}, k, torch::kInt64), set.targets);
  std::vector<int64_t> counts = ToVector(torch::bincount(binned.flatten(), {}, k + 1));
  counts.resize(static_cast<size_t>(k));
  summary->pixels_per_class = std::move(counts);
}

train::TensorDataset Part(const DecodedSet& set, const DatasetScan& scan, int64_t ignore_index,
                          train::Task task, const std::vector<int64_t>& ids) {
  train::TensorDataset part;
  part.task = task;
  part.class_names = scan.class_names;
  part.ignore_index = ignore_index;
  if (ids.empty()) {
    part.images = set.images.narrow(0, 0, 0);
    part.targets = set.targets.narrow(0, 0, 0);
  } else if (ids.back() - ids.front() + 1 == static_cast<int64_t>(ids.size())) {
    // A contiguous run (all items, or a data set's own train/ then val/): a view, no copy, so
    // a large set is not held twice.
    const int64_t count = static_cast<int64_t>(ids.size());
    part.images = set.images.narrow(0, ids.front(), count);
    part.targets = set.targets.narrow(0, ids.front(), count);
  } else {
    const torch::Tensor index = torch::tensor(ids, torch::kInt64);
    part.images = set.images.index_select(0, index);
    part.targets = set.targets.index_select(0, index);
  }
  return part;
}

StatusOr<LoadedDataset> Load(const DatasetOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  SELENE_RETURN_IF_ERROR(ValidateOptions(options));
  SELENE_ASSIGN_OR_RETURN(const std::string root, ResolveUnderRoot(options.data_root, ""));
  SELENE_ASSIGN_OR_RETURN(const std::string folder,
                          ResolveUnderRoot(options.data_root, options.path));
  SELENE_ASSIGN_OR_RETURN(DatasetScan scan, Scan(options, folder, root));
  scan.folder = folder;

  LoadedDataset loaded;
  DataSummary& summary = loaded.summary;
  summary = scan.summary;
  summary.dataset = DatasetKindName(options.kind);
  summary.task = train::TaskName(options.task);
  summary.root = folder;
  summary.storage_size = scan.storage_size;
  summary.class_names = scan.class_names;
  if (scan.items.empty()) {
    return FailedPreconditionError(Refusal(folder, summary));
  }

  // Decode, or take the disk cache when it matches.
  const CacheKey key = MakeCacheKey(scan, options);
  const std::string cache_path =
      options.cache_dir.empty() ? "" : CacheFilePath(options.cache_dir, options, key);
  DecodedSet decoded;
  bool hit = false;
  if (!cache_path.empty()) {
    StatusOr<DecodedSet> cached = LoadDecodedCache(cache_path, key);
    if (cached.ok()) {
      decoded = *std::move(cached);
      hit = true;
    } else if (!absl::IsNotFound(cached.status())) {
      summary.warnings.push_back(std::string(cached.status().message()));
    }
  }
  const int64_t total = static_cast<int64_t>(scan.items.size());
  std::function<void(int64_t, int64_t)> progress;
  if (options.on_progress) {
    progress = [&options](int64_t done, int64_t all) { options.on_progress({done, all}); };
  }
  if (hit) {
    if (progress) progress(total, total);
  } else {
    SELENE_ASSIGN_OR_RETURN(decoded, DecodeScan(scan, options.ignore_index, options.decode_threads,
                                                progress, options.stop));
    if (!cache_path.empty() && decoded.size() > 0) {
      const Status saved = SaveDecodedCache(cache_path, key, decoded);
      if (!saved.ok()) summary.warnings.push_back(std::string(saved.message()));
    }
  }
  loaded.cache_hit = hit;
  summary.cache_hit = hit;
  for (const std::string& problem : decoded.unreadable) summary.unreadable.push_back(problem);
  for (const std::string& warning : decoded.warnings) summary.warnings.push_back(warning);
  summary.image_sizes = decoded.image_sizes;
  summary.empty_masks = decoded.empty_masks;
  summary.empty_mask_examples = decoded.empty_mask_examples;
  summary.unmatched_colour_pixels = decoded.unmatched_colour_pixels;
  if (decoded.unmatched_colour_pixels > 0) {
    summary.warnings.push_back(absl::StrCat(decoded.unmatched_colour_pixels,
                                            " mask pixels have colours not in class_dict.csv; "
                                            "they get the ignore id ",
                                            options.ignore_index));
  }
  if (decoded.size() == 0) {
    return FailedPreconditionError(Refusal(folder, summary));
  }

  // Split.
  const bool own = scan.has_own_split && !options.validation_fraction_set;
  std::vector<bool> in_val(decoded.in_val.begin(), decoded.in_val.end());
  if (own) {
    summary.split = scan.own_split;
  } else {
    in_val = SplitByName(decoded.names, options.validation_fraction, options.split_seed);
    summary.split = absl::StrFormat("fraction %g, seed %d (by item name)",
                                    options.validation_fraction, options.split_seed);
  }
  std::vector<int64_t> train_ids;
  std::vector<int64_t> val_ids;
  for (int64_t i = 0; i < decoded.size(); ++i) (in_val[i] ? val_ids : train_ids).push_back(i);
  summary.train_items = static_cast<int64_t>(train_ids.size());
  summary.val_items = static_cast<int64_t>(val_ids.size());
  if (train_ids.empty()) {
    return FailedPreconditionError(
        absl::StrCat("no usable training items in ", folder, " (", val_ids.size(),
                     " validation items; split: ", summary.split, "): ", FirstProblems(summary)));
  }
  if (val_ids.empty() && (own || options.validation_fraction > 0.0)) {
    summary.warnings.push_back("the validation part is empty");
  }
  CountClasses(decoded, scan, options.ignore_index, &summary);
  loaded.split.train = Part(decoded, scan, options.ignore_index, options.task, train_ids);
  loaded.split.val = Part(decoded, scan, options.ignore_index, options.task, val_ids);
  for (int64_t i : train_ids) loaded.train_names.push_back(decoded.names[i]);
  for (int64_t i : val_ids) loaded.val_names.push_back(decoded.names[i]);
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return loaded;
}

}  // namespace

StatusOr<LoadedDataset> LoadDataset(const DatasetOptions& options) {
  try {
    return Load(options);
  } catch (const c10::Error& e) {
    return InternalError(absl::StrCat("loading ", DatasetKindName(options.kind), " data at \"",
                                      options.path, "\": ", e.what_without_backtrace()));
  } catch (const cv::Exception& e) {
    return InternalError(absl::StrCat("loading ", DatasetKindName(options.kind), " data at \"",
                                      options.path, "\": OpenCV: ", e.what()));
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError(absl::StrCat("out of memory loading ",
                                               DatasetKindName(options.kind), " data at \"",
                                               options.path, "\""));
  } catch (const std::exception& e) {
    return InternalError(absl::StrCat("loading ", DatasetKindName(options.kind), " data at \"",
                                      options.path, "\": ", e.what()));
  }
}

StatusOr<DataSummary> InspectDataset(const DatasetOptions& options) {
  SELENE_ASSIGN_OR_RETURN(LoadedDataset loaded, LoadDataset(options));
  return std::move(loaded.summary);
}

}  // namespace selene::data
