#include "server/data/moon_reader.h"

#include <cctype>
#include <map>

#include "absl/strings/str_cat.h"

namespace selene::data {
namespace {

// The render and ground folders of one part, or empty strings when the part has none.
struct PartFolders {
  std::string render;
  std::string ground;
};

PartFolders FindPart(const std::string& base) {
  for (const char* prefix : {"/images", ""}) {
    const std::string render = absl::StrCat(base, prefix, "/render");
    const std::string ground = absl::StrCat(base, prefix, "/ground");
    if (IsFolder(render) || IsFolder(ground)) return {render, ground};
  }
  return {};
}

Status ScanPart(const std::string& folder, const std::string& data_root, const PartFolders& part,
                bool in_val, DatasetScan* scan, std::vector<std::string>* problems) {
  DataSummary& summary = scan->summary;
  std::vector<FileEntry> renders;
  std::vector<FileEntry> grounds;
  if (IsFolder(part.render)) {
    SELENE_ASSIGN_OR_RETURN(renders, ListImageFiles(part.render, data_root, problems));
  } else {
    summary.warnings.push_back(
        absl::StrCat(RelativePath(part.render, folder), " not found: its masks have no renders"));
  }
  if (IsFolder(part.ground)) {
    SELENE_ASSIGN_OR_RETURN(grounds, ListImageFiles(part.ground, data_root, problems));
  } else {
    summary.warnings.push_back(
        absl::StrCat(RelativePath(part.ground, folder), " not found: its renders have no masks"));
  }
  summary.images_found += static_cast<int64_t>(renders.size());
  summary.masks_found += static_cast<int64_t>(grounds.size());

  std::map<int64_t, FileEntry> ground_by_frame;
  for (FileEntry& ground : grounds) {
    const std::string name = RelativePath(ground.path, folder);
    const int64_t frame = FrameNumber(ground.name);
    if (frame < 0) {
      summary.unpaired.push_back(absl::StrCat(name, ": no frame number in the name"));
      continue;
    }
    auto [it, inserted] = ground_by_frame.emplace(frame, ground);
    if (!inserted) {
      summary.unpaired.push_back(
          absl::StrCat(name, ": frame ", frame, " already has mask ", it->second.name));
    }
  }
  std::map<int64_t, std::string> render_of_frame;
  for (FileEntry& render : renders) {
    const std::string name = RelativePath(render.path, folder);
    const int64_t frame = FrameNumber(render.name);
    if (frame < 0) {
      summary.unpaired.push_back(absl::StrCat(name, ": no frame number in the name"));
      continue;
    }
    auto [seen, inserted] = render_of_frame.emplace(frame, render.name);
    if (!inserted) {
      summary.unpaired.push_back(
          absl::StrCat(name, ": frame ", frame, " already has render ", seen->second));
      continue;
    }
    auto ground = ground_by_frame.find(frame);
    if (ground == ground_by_frame.end()) {
      summary.unpaired.push_back(absl::StrCat(name, ": no mask for frame ", frame, " in ",
                                              RelativePath(part.ground, folder)));
      continue;
    }
    ScanItem item;
    item.name = name;
    item.image = std::move(render);
    item.mask = ground->second;
    item.in_val = in_val;
    scan->items.push_back(std::move(item));
  }
  for (const auto& [frame, ground] : ground_by_frame) {
    if (!render_of_frame.count(frame)) {
      summary.unpaired.push_back(absl::StrCat(RelativePath(ground.path, folder),
                                              ": no render for frame ", frame, " in ",
                                              RelativePath(part.render, folder)));
    }
  }
  return OkStatus();
}

}  // namespace

int64_t FrameNumber(const std::string& file_name) {
  const std::string stem = FileStem(file_name);
  size_t end = stem.size();
  while (end > 0 && !std::isdigit(static_cast<unsigned char>(stem[end - 1]))) --end;
  if (end == 0) return -1;
  size_t begin = end;
  while (begin > 0 && std::isdigit(static_cast<unsigned char>(stem[begin - 1]))) --begin;
  // Long digit runs (timestamps) would overflow: keep the last 18 digits.
  if (end - begin > 18) begin = end - 18;
  return std::stoll(stem.substr(begin, end - begin));
}

StatusOr<DatasetScan> ScanMoon(const std::string& folder, const std::string& data_root,
                               const DatasetOptions& options) {
  if (options.task != train::Task::kBinarySegmentation) {
    return InvalidArgumentError(
        absl::StrCat("moon is a binary segmentation data set (rock vs background), not ",
                     train::TaskName(options.task)));
  }
  if (options.num_classes > 1) {
    return InvalidArgumentError(absl::StrCat("moon has one class (rock); num_classes ",
                                             options.num_classes, " is not possible"));
  }
  DatasetScan scan;
  scan.storage_size = options.image_size;
  scan.mask_mode = MaskMode::kBinaryAuto;
  scan.class_names = {"rock"};
  scan.num_classes = 1;
  std::vector<std::string> problems;
  const PartFolders train = FindPart(folder + "/train");
  const PartFolders val = FindPart(folder + "/val");
  if (!train.render.empty() && !val.render.empty()) {
    SELENE_RETURN_IF_ERROR(ScanPart(folder, data_root, train, false, &scan, &problems));
    SELENE_RETURN_IF_ERROR(ScanPart(folder, data_root, val, true, &scan, &problems));
    scan.has_own_split = true;
    scan.own_split = "train/ and val/ folders";
  } else if (const PartFolders all = FindPart(folder); !all.render.empty()) {
    SELENE_RETURN_IF_ERROR(ScanPart(folder, data_root, all, false, &scan, &problems));
    if (!train.render.empty() || !val.render.empty()) {
      scan.summary.warnings.push_back(
          absl::StrCat("only one of train/ and val/ holds a MOON layout: it is ignored, ",
                       RelativePath(all.render, folder), " is used"));
    }
  } else if (!train.render.empty() || !val.render.empty()) {
    const bool only_train = !train.render.empty();
    SELENE_RETURN_IF_ERROR(
        ScanPart(folder, data_root, only_train ? train : val, false, &scan, &problems));
    scan.summary.warnings.push_back(
        absl::StrCat("only ", only_train ? "train/" : "val/",
                     " holds a MOON layout: validation is split off it"));
  } else {
    return NotFoundError(absl::StrCat("no MOON layout in ", folder, ": expected ", folder,
                                      "/images/render and ", folder,
                                      "/images/ground (or train/ and val/ holding them)"));
  }
  for (const std::string& problem : problems) {
    scan.summary.unreadable.push_back(RelativePath(problem, folder));
  }
  return scan;
}

}  // namespace selene::data
