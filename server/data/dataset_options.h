// What a caller asks of the data set readers: which data set, where, which classes, at which
// size and split. Kept free of torch so request handling can include it cheaply; the loading
// entry points are in dataset_loader.h.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "server/train/task.h"

namespace selene::data {

enum class DatasetKind { kTinyImageNet, kMoon, kSegmentationFolder };

std::string DatasetKindName(DatasetKind kind);  // "tiny_imagenet", "moon", "segmentation_folder"

struct DecodeProgress {
  int64_t done = 0;
  int64_t total = 0;
};

struct DatasetOptions {
  DatasetKind kind = DatasetKind::kTinyImageNet;
  train::Task task = train::Task::kClassification;
  std::string data_root;  // request paths are relative to it ("" = the current directory)
  std::string path;       // relative to data_root
  // 0 = all the data set has. Tiny ImageNet: the first N of wnids.txt. Segmentation folders: the
  // class count, required when no classes.txt / class_dict.csv names them. Binary tasks: 0 or 1.
  int64_t num_classes = 0;
  // Explicit classes, in this order (label i = class_ids[i]). Tiny ImageNet: wnids.
  // Segmentation folders: the names of ids 0..K-1 (they replace classes.txt's).
  std::vector<std::string> class_ids;
  // The model's input side. Tiny ImageNet is stored at min(64, image_size) (the loader upsamples
  // on the device); MOON and segmentation folders at image_size x image_size.
  int64_t image_size = 64;
  double validation_fraction = 0.2;
  bool validation_fraction_set = false;  // false: a data set's own split (val/ folders) wins
  uint64_t split_seed = 1;
  int64_t ignore_index = -100;  // void label id of segmentation masks
  int decode_threads = 0;       // 0 = hardware threads
  std::string cache_dir;        // "" = no on-disk cache
  // Called on the calling thread every ~2% of the files decoded; may be empty.
  std::function<void(const DecodeProgress&)> on_progress;
  // Checked before every file is decoded: once set, the load stops within one file's decoding
  // and returns Cancelled (nothing is cached). May be null.
  const std::atomic<bool>* stop = nullptr;
};

}  // namespace selene::data
