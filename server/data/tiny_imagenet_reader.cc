#include "server/data/tiny_imagenet_reader.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace selene::data {
namespace {

constexpr size_t kExamples = 5;  // named examples in one aggregated warning

StatusOr<std::vector<std::string>> ReadLines(const std::string& path) {
  std::ifstream file(path);
  if (!file) return NotFoundError(absl::StrCat(path, " not found or unreadable"));
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(file, line)) lines.push_back(line);
  if (file.bad()) return NotFoundError(absl::StrCat("error reading ", path));
  return lines;
}

// "n01443537\tgoldfish, Carassius auratus" -> {"n01443537", "goldfish"}.
std::map<std::string, std::string> ParseWords(const std::vector<std::string>& lines) {
  std::map<std::string, std::string> names;
  for (const std::string& line : lines) {
    const size_t tab = line.find('\t');
    if (tab == std::string::npos) continue;
    const std::string wnid(absl::StripAsciiWhitespace(line.substr(0, tab)));
    std::string synonyms = line.substr(tab + 1);
    const std::string first(absl::StripAsciiWhitespace(synonyms.substr(0, synonyms.find(','))));
    if (!wnid.empty() && !first.empty()) names.emplace(wnid, first);
  }
  return names;
}

std::string Examples(const std::vector<std::string>& names) {
  std::vector<std::string> shown(names.begin(), names.begin() + std::min(names.size(), kExamples));
  std::string text = absl::StrJoin(shown, ", ");
  if (names.size() > shown.size())
    absl::StrAppend(&text, ", ... and ", names.size() - shown.size(), " more");
  return text;
}

}  // namespace

StatusOr<DatasetScan> ScanTinyImageNet(const std::string& folder, const std::string& data_root,
                                       const DatasetOptions& options) {
  if (options.task != train::Task::kClassification) {
    return InvalidArgumentError(absl::StrCat("tiny_imagenet is a classification data set, not ",
                                             train::TaskName(options.task)));
  }
  DatasetScan scan;
  DataSummary& summary = scan.summary;
  scan.storage_size = std::min<int64_t>(64, options.image_size);

  // Classes.
  const std::string wnids_path = folder + "/wnids.txt";
  SELENE_ASSIGN_OR_RETURN(std::vector<std::string> wnid_lines, ReadLines(wnids_path));
  scan.side_files.push_back(StatFile(wnids_path));
  std::vector<std::string> wnids;
  std::set<std::string> known;
  for (const std::string& line : wnid_lines) {
    const std::string wnid(absl::StripAsciiWhitespace(line));
    if (wnid.empty()) continue;
    if (!known.insert(wnid).second) {
      summary.warnings.push_back(absl::StrCat("wnids.txt lists ", wnid, " twice (kept once)"));
      continue;
    }
    wnids.push_back(wnid);
  }
  if (wnids.empty()) return FailedPreconditionError(absl::StrCat(wnids_path, " lists no classes"));

  std::vector<std::string> selected;
  if (!options.class_ids.empty()) {
    if (options.num_classes > 0 &&
        options.num_classes != static_cast<int64_t>(options.class_ids.size())) {
      return InvalidArgumentError(absl::StrCat("num_classes ", options.num_classes, " but ",
                                               options.class_ids.size(), " class_ids given"));
    }
    std::set<std::string> seen;
    for (const std::string& wnid : options.class_ids) {
      if (!known.count(wnid)) {
        return InvalidArgumentError(absl::StrCat("class id \"", wnid, "\" is not in ", wnids_path,
                                                 " (Tiny ImageNet classes are wnids such as ",
                                                 wnids.front(), ")"));
      }
      if (!seen.insert(wnid).second) {
        return InvalidArgumentError(absl::StrCat("class id \"", wnid, "\" is given twice"));
      }
      selected.push_back(wnid);
    }
  } else if (options.num_classes > 0) {
    if (options.num_classes > static_cast<int64_t>(wnids.size())) {
      return InvalidArgumentError(absl::StrCat("num_classes ", options.num_classes, " but ",
                                               wnids_path, " lists ", wnids.size(), " classes"));
    }
    selected.assign(wnids.begin(), wnids.begin() + options.num_classes);
  } else {
    selected = wnids;
  }
  std::map<std::string, int64_t> label_of;
  for (size_t i = 0; i < selected.size(); ++i) label_of[selected[i]] = static_cast<int64_t>(i);

  const std::string words_path = folder + "/words.txt";
  std::map<std::string, std::string> words;
  auto word_lines = ReadLines(words_path);
  if (word_lines.ok()) {
    scan.side_files.push_back(StatFile(words_path));
    words = ParseWords(*word_lines);
  } else {
    summary.warnings.push_back("words.txt missing: classes are named by their wnids");
  }
  std::vector<std::string> unnamed;
  for (const std::string& wnid : selected) {
    auto it = words.find(wnid);
    if (it == words.end()) {
      if (word_lines.ok()) unnamed.push_back(wnid);
      scan.class_names.push_back(wnid);
    } else {
      scan.class_names.push_back(it->second);
    }
  }
  if (!unnamed.empty()) {
    summary.warnings.push_back(
        absl::StrCat("words.txt has no name for ", Examples(unnamed), " (named by wnid)"));
  }
  scan.num_classes = static_cast<int64_t>(selected.size());

  // Train images.
  std::vector<std::string> problems;
  for (const std::string& wnid : selected) {
    const std::string images = folder + "/train/" + wnid + "/images";
    if (!IsFolder(images)) {
      summary.warnings.push_back(absl::StrCat("train/", wnid, "/images not found: class ", wnid,
                                              " has no training images"));
      continue;
    }
    SELENE_ASSIGN_OR_RETURN(std::vector<FileEntry> files,
                            ListImageFiles(images, data_root, &problems));
    if (files.empty()) {
      summary.warnings.push_back(absl::StrCat("train/", wnid, "/images holds no images"));
    }
    for (FileEntry& file : files) {
      ScanItem item;
      item.name = RelativePath(file.path, folder);
      item.image = std::move(file);
      item.label = label_of[wnid];
      scan.items.push_back(std::move(item));
    }
  }
  summary.images_found = static_cast<int64_t>(scan.items.size());

  // Validation images, labelled by val_annotations.txt.
  const std::string val_images = folder + "/val/images";
  const std::string annotations_path = folder + "/val/val_annotations.txt";
  if (!IsFolder(val_images)) {
    summary.warnings.push_back("val/images not found: validation is split off the training images");
  } else {
    SELENE_ASSIGN_OR_RETURN(std::vector<FileEntry> files,
                            ListImageFiles(val_images, data_root, &problems));
    auto annotation_lines = ReadLines(annotations_path);
    if (!annotation_lines.ok()) {
      summary.images_found += static_cast<int64_t>(files.size());
      summary.warnings.push_back(absl::StrCat("val/val_annotations.txt missing: the ", files.size(),
                                              " val images have no labels and are left out; "
                                              "validation is split off the training images"));
    } else {
      scan.side_files.push_back(StatFile(annotations_path));
      std::map<std::string, std::string> wnid_of;  // file name -> wnid
      std::vector<std::string> unknown_classes;
      for (size_t i = 0; i < annotation_lines->size(); ++i) {
        const std::string& line = (*annotation_lines)[i];
        if (absl::StripAsciiWhitespace(line).empty()) continue;
        std::vector<std::string> fields = absl::StrSplit(line, '\t');
        if (fields.size() < 2) {
          summary.warnings.push_back(absl::StrCat("val/val_annotations.txt line ", i + 1,
                                                  ": expected file<TAB>wnid, got \"", line, "\""));
          continue;
        }
        const std::string file(absl::StripAsciiWhitespace(fields[0]));
        const std::string wnid(absl::StripAsciiWhitespace(fields[1]));
        if (!known.count(wnid)) unknown_classes.push_back(absl::StrCat(file, " (", wnid, ")"));
        auto [it, inserted] = wnid_of.emplace(file, wnid);
        if (!inserted && it->second != wnid) {
          summary.warnings.push_back(absl::StrCat("val/val_annotations.txt lists ", file,
                                                  " as both ", it->second, " and ", wnid,
                                                  " (the first is used)"));
        }
      }
      if (!unknown_classes.empty()) {
        summary.warnings.push_back(
            absl::StrCat("val/val_annotations.txt labels ", unknown_classes.size(),
                         " images with wnids not in wnids.txt: ", Examples(unknown_classes)));
      }
      std::vector<std::string> unannotated;
      std::set<std::string> present;
      for (FileEntry& file : files) {
        present.insert(file.name);
        auto it = wnid_of.find(file.name);
        if (it == wnid_of.end()) {
          unannotated.push_back("val/images/" + file.name);
          ++summary.images_found;
          continue;
        }
        auto label = label_of.find(it->second);
        if (label == label_of.end()) continue;  // a class outside the selection
        ScanItem item;
        item.name = RelativePath(file.path, folder);
        item.image = std::move(file);
        item.label = label->second;
        item.in_val = true;
        scan.items.push_back(std::move(item));
        ++summary.images_found;
      }
      if (!unannotated.empty()) {
        summary.warnings.push_back(absl::StrCat(unannotated.size(),
                                                " val images are not in val/val_annotations.txt "
                                                "and are left out: ",
                                                Examples(unannotated)));
      }
      std::vector<std::string> missing;
      for (const auto& [file, wnid] : wnid_of) {
        if (label_of.count(wnid) && !present.count(file)) missing.push_back("val/images/" + file);
      }
      if (!missing.empty()) {
        summary.warnings.push_back(
            absl::StrCat("val/val_annotations.txt lists ", missing.size(),
                         " images of the selected classes that are missing: ", Examples(missing)));
      }
      scan.has_own_split = std::any_of(scan.items.begin(), scan.items.end(),
                                       [](const ScanItem& item) { return item.in_val; });
      scan.own_split = "val/images labelled by val/val_annotations.txt";
    }
  }
  for (const std::string& problem : problems) {
    summary.unreadable.push_back(RelativePath(problem, folder));
  }
  return scan;
}

}  // namespace selene::data
