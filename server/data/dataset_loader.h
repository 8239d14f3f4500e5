// Loads a real data set (Tiny ImageNet-200, MOON, segmentation folders) from under a data root
// into uint8 tensors at its storage size: scan, integrity check, parallel decode once (or a disk
// cache hit), train/val split, summary. The one entry point training and inspection use.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "server/data/data_summary.h"
#include "server/data/dataset_options.h"
#include "server/train/tensor_dataset.h"

namespace selene::data {

struct LoadedDataset {
  train::TrainValSplit split;  // uint8 images at the storage size; targets as in tensor_dataset.h
  DataSummary summary;
  bool cache_hit = false;
  // Row i of split.train / split.val came from this file (path relative to summary.root).
  std::vector<std::string> train_names;
  std::vector<std::string> val_names;
};

// Errors: InvalidArgument for a path escaping the data root (naming path and root), bad options
// (naming the option and value) or label ids out of range (naming the file and value); NotFound
// naming a missing folder or index file; FailedPrecondition naming the folder and the first
// problems when nothing usable is left (or nothing to train on). Unreadable and unpaired files
// are left out and named in the summary. Split: the data set's own (val/ folders) unless
// options.validation_fraction_set, else by fraction and seed over item names (item_split.h).
StatusOr<LoadedDataset> LoadDataset(const DatasetOptions& options);

// Scans and decodes everything like LoadDataset (so unreadable files are found), returns only the
// summary.
StatusOr<DataSummary> InspectDataset(const DatasetOptions& options);

}  // namespace selene::data
