#include "server/data/segmentation_folder_reader.h"

#include <map>

#include "absl/strings/str_cat.h"

namespace selene::data {
namespace {

Status ScanPair(const std::string& folder, const std::string& data_root, const std::string& images,
                const std::string& masks, bool in_val, DatasetScan* scan,
                std::vector<std::string>* problems) {
  DataSummary& summary = scan->summary;
  SELENE_ASSIGN_OR_RETURN(std::vector<FileEntry> image_files,
                          ListImageFiles(images, data_root, problems));
  std::vector<FileEntry> mask_files;
  if (IsFolder(masks)) {
    SELENE_ASSIGN_OR_RETURN(mask_files, ListImageFiles(masks, data_root, problems));
  } else {
    summary.warnings.push_back(
        absl::StrCat(RelativePath(masks, folder), " not found: its images have no masks"));
  }
  summary.images_found += static_cast<int64_t>(image_files.size());
  summary.masks_found += static_cast<int64_t>(mask_files.size());
  std::map<std::string, FileEntry> mask_by_stem;
  for (FileEntry& mask : mask_files) {
    auto [it, inserted] = mask_by_stem.emplace(FileStem(mask.name), mask);
    if (!inserted) {
      summary.unpaired.push_back(absl::StrCat(RelativePath(mask.path, folder),
                                              ": another mask has the same stem (", it->second.name,
                                              ")"));
    }
  }
  std::map<std::string, std::string> image_of_stem;
  for (FileEntry& image : image_files) {
    const std::string name = RelativePath(image.path, folder);
    const std::string stem = FileStem(image.name);
    auto [seen, inserted] = image_of_stem.emplace(stem, image.name);
    if (!inserted) {
      summary.unpaired.push_back(
          absl::StrCat(name, ": another image has the same stem (", seen->second, ")"));
      continue;
    }
    auto mask = mask_by_stem.find(stem);
    if (mask == mask_by_stem.end()) {
      summary.unpaired.push_back(
          absl::StrCat(name, ": no mask named ", stem, ".* in ", RelativePath(masks, folder)));
      continue;
    }
    ScanItem item;
    item.name = name;
    item.image = std::move(image);
    item.mask = mask->second;
    item.in_val = in_val;
    scan->items.push_back(std::move(item));
  }
  for (const auto& [stem, mask] : mask_by_stem) {
    if (!image_of_stem.count(stem)) {
      summary.unpaired.push_back(absl::StrCat(RelativePath(mask.path, folder), ": no image named ",
                                              stem, ".* in ", RelativePath(images, folder)));
    }
  }
  return OkStatus();
}

// Class names and count from the options and the folder's classes.txt / class_dict.csv.
Status ResolveClasses(const std::string& folder, const DatasetOptions& options, DatasetScan* scan) {
  const bool binary = options.task == train::Task::kBinarySegmentation;
  const std::string names_path = folder + "/classes.txt";
  const std::string dict_path = folder + "/class_dict.csv";
  const FileEntry names_file = StatFile(names_path);
  const FileEntry dict_file = StatFile(dict_path);

  if (binary) {
    if (options.num_classes > 1 || options.class_ids.size() > 1) {
      return InvalidArgumentError(
          absl::StrCat("binary segmentation has one class (foreground); got num_classes ",
                       options.num_classes, " and ", options.class_ids.size(), " class_ids"));
    }
    scan->class_names = {options.class_ids.empty() ? "foreground" : options.class_ids[0]};
    scan->num_classes = 1;
    scan->mask_mode = MaskMode::kNonzero;
    return OkStatus();
  }

  // (source, names) for every source present; all must agree on the count.
  std::vector<std::pair<std::string, std::vector<std::string>>> sources;
  if (!options.class_ids.empty()) sources.push_back({"class_ids", options.class_ids});
  if (names_file.size >= 0) {
    SELENE_ASSIGN_OR_RETURN(std::vector<std::string> names, ReadClassNames(names_path));
    sources.push_back({"classes.txt", names});
    scan->side_files.push_back(names_file);
  }
  if (dict_file.size >= 0) {
    SELENE_ASSIGN_OR_RETURN(scan->palette, ReadClassDict(dict_path));
    sources.push_back({"class_dict.csv", scan->palette.names});
    scan->side_files.push_back(dict_file);
    scan->mask_mode = MaskMode::kPalette;
  } else {
    scan->mask_mode = MaskMode::kIds;
  }
  if (options.num_classes > 0) {
    std::vector<std::string> generic;
    for (int64_t i = 0; i < options.num_classes; ++i) generic.push_back(absl::StrCat("class_", i));
    sources.push_back({"num_classes", generic});
  }
  if (sources.empty()) {
    return InvalidArgumentError(
        absl::StrCat("num_classes is required for multi-class segmentation of ", folder,
                     ": it has no classes.txt or class_dict.csv naming the classes"));
  }
  for (const auto& [source, names] : sources) {
    if (names.size() != sources.front().second.size()) {
      return InvalidArgumentError(
          absl::StrCat(sources.front().first, " gives ", sources.front().second.size(),
                       " classes but ", source, " gives ", names.size(), " (in ", folder, ")"));
    }
  }
  if (sources.front().second.size() < 2) {
    return InvalidArgumentError(absl::StrCat("multi-class segmentation needs at least 2 classes; ",
                                             sources.front().first, " gives ",
                                             sources.front().second.size()));
  }
  scan->class_names = sources.front().second;
  scan->num_classes = static_cast<int64_t>(scan->class_names.size());
  return OkStatus();
}

}  // namespace

StatusOr<DatasetScan> ScanSegmentationFolder(const std::string& folder,
                                             const std::string& data_root,
                                             const DatasetOptions& options) {
  if (options.task == train::Task::kClassification) {
    return InvalidArgumentError(
        "segmentation_folder is for segmentation (binary or multi-class), not classification");
  }
  DatasetScan scan;
  scan.storage_size = options.image_size;
  SELENE_RETURN_IF_ERROR(ResolveClasses(folder, options, &scan));
  std::vector<std::string> problems;
  if (IsFolder(folder + "/train") && IsFolder(folder + "/trainannot")) {
    SELENE_RETURN_IF_ERROR(ScanPair(folder, data_root, folder + "/train", folder + "/trainannot",
                                    false, &scan, &problems));
    if (IsFolder(folder + "/val")) {
      SELENE_RETURN_IF_ERROR(ScanPair(folder, data_root, folder + "/val", folder + "/valannot",
                                      true, &scan, &problems));
      scan.has_own_split = true;
      scan.own_split = "val/ + valannot/ folders";
    } else {
      scan.summary.warnings.push_back("no val/ folder: validation is split off train/");
    }
  } else if (IsFolder(folder + "/images")) {
    SELENE_RETURN_IF_ERROR(ScanPair(folder, data_root, folder + "/images", folder + "/masks", false,
                                    &scan, &problems));
  } else {
    return NotFoundError(absl::StrCat("no segmentation layout in ", folder, ": expected ", folder,
                                      "/train + trainannot (and val + valannot) or ", folder,
                                      "/images + masks"));
  }
  for (const std::string& problem : problems) {
    scan.summary.unreadable.push_back(RelativePath(problem, folder));
  }
  return scan;
}

}  // namespace selene::data
