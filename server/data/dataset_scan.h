// The result of scanning a data set folder, before any decoding: the items (image, mask or
// label, own split), class names and how masks are to be read. Each reader produces one; the
// decoder, the cache key and the summary consume it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "server/data/class_palette.h"
#include "server/data/data_summary.h"
#include "server/data/file_listing.h"

namespace selene::data {

struct ScanItem {
  std::string name;  // image path relative to the data set folder: message name and split key
  FileEntry image;
  FileEntry mask;       // segmentation only (path empty otherwise)
  int64_t label = -1;   // classification only
  bool in_val = false;  // the data set's own split
};

enum class MaskMode {
  kNone,        // classification
  kBinaryAuto,  // MOON: binary or colour-coded, detected per file (mask_encoding.h)
  kNonzero,     // binary segmentation folder: any nonzero channel is foreground
  kIds,         // class ids as grey values
  kPalette,     // exact colours from class_dict.csv
};

struct DatasetScan {
  std::string folder;  // the data set folder (canonical); item names are relative to it
  std::vector<ScanItem> items;
  std::vector<std::string> class_names;
  int64_t num_classes = 0;  // multi-class: label values must be < this (or the ignore id)
  int64_t storage_size = 0;
  MaskMode mask_mode = MaskMode::kNone;
  ClassPalette palette;               // kPalette
  bool has_own_split = false;         // some items are in_val by the data set's own layout
  std::string own_split;              // how, e.g. "val/ folder with val_annotations.txt"
  std::vector<FileEntry> side_files;  // wnids.txt, class_dict.csv, ...: part of the cache key
  // Filled by the scan: dataset, task, root, images_found, masks_found, unpaired, warnings.
  DataSummary summary;
};

}  // namespace selene::data
