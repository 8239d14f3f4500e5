#include "server/jobs/data_item_count.h"

#include <filesystem>
#include <system_error>

namespace selene::jobs {
namespace {

namespace fs = std::filesystem;

// Regular, non-hidden files directly in `folder` (the readers' image and mask folders hold
// nothing else that matters; hidden files are skipped by them too).
int64_t CountFiles(const fs::path& folder) {
  std::error_code error;
  fs::directory_iterator it(folder, error);
  if (error) return 0;
  int64_t count = 0;
  for (const fs::directory_entry& entry : it) {
    const std::string name = entry.path().filename().string();
    if (!name.empty() && name[0] != '.' && entry.is_regular_file(error)) ++count;
  }
  return count;
}

// The layouts of server/data/moon_reader.h: [train/|val/]{images/render|render}.
int64_t CountMoon(const fs::path& folder) {
  int64_t count = 0;
  for (const fs::path& base : {folder, folder / "train", folder / "val"}) {
    count += CountFiles(base / "images" / "render") + CountFiles(base / "render");
  }
  return count;
}

// The layouts of server/data/segmentation_folder_reader.h: train/ + val/ (labels in trainannot/
// and valannot/), or images/ (labels in masks/).
int64_t CountSegmentationFolder(const fs::path& folder) {
  return CountFiles(folder / "train") + CountFiles(folder / "val") + CountFiles(folder / "images");
}

}  // namespace

int64_t CountDataItems(v1::DataKind kind, const std::string& folder) {
  switch (kind) {
    case v1::DATA_KIND_MOON:
      return CountMoon(folder);
    case v1::DATA_KIND_SEGMENTATION_FOLDER:
      return CountSegmentationFolder(folder);
    default:
      return -1;
  }
}

}  // namespace selene::jobs
