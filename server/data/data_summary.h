// What a data set scan and decode found: counts, problems (each file named), sizes and class
// balance. Returned with every loaded data set and by InspectDataset, printed by the CLI, and
// sent as JSON to clients that check a data set before training on it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace selene::data {

struct DataSummary {
  std::string dataset;  // kind name: "tiny_imagenet", "moon", "segmentation_folder"
  std::string task;     // "classification", "binary_segmentation", "multiclass_segmentation"
  std::string root;     // the resolved data set folder
  std::string split;    // how train/val were formed, e.g. "val/ folder" or "fraction 0.2, seed 1"
  int64_t storage_size = 0;  // side of the stored square images (Tiny ImageNet: min(64, size))

  int64_t images_found = 0;  // image files seen (usable or not)
  int64_t masks_found = 0;   // mask / label files seen (segmentation)
  int64_t train_items = 0;   // usable items in each part
  int64_t val_items = 0;

  std::vector<std::string> unpaired;    // "path: reason" (image without mask, and the reverse)
  std::vector<std::string> unreadable;  // "path: reason" (corrupt, truncated, empty, wrong size)
  std::vector<std::string> warnings;    // everything else worth a look; never fatal

  std::map<std::string, int64_t> image_sizes;  // native "WxH" -> usable images of that size

  std::vector<std::string> class_names;
  // Classification: usable images per class, train and val together.
  std::vector<int64_t> images_per_class;
  // Segmentation, counted on the stored (resized) masks of both parts. Multi-class: one entry
  // per class, the ignore id left out (its pixels are in ignored_pixels). Binary: two entries,
  // {background, class_names[0]}.
  std::vector<int64_t> pixels_per_class;
  int64_t ignored_pixels = 0;
  int64_t unmatched_colour_pixels = 0;  // palette masks: colours not in class_dict.csv (-> ignore)
  // Masks with nothing to learn: binary, no positive pixel; multi-class, every pixel ignored.
  int64_t empty_masks = 0;
  std::vector<std::string> empty_mask_examples;  // the first few, by path

  bool cache_hit = false;
  double seconds = 0.0;  // scan plus decode (or cache read)
};

// Human-readable, aligned, a few dozen lines at most: long lists end with "... and N more".
std::string FormatDataSummary(const DataSummary& summary);

// The whole summary as one JSON object (field names as above, lists in full).
std::string DataSummaryToJson(const DataSummary& summary);

}  // namespace selene::data
