// Tiny ImageNet-200 in its original layout: wnids.txt (the class order), words.txt (names),
// train/<wnid>/images/*.JPEG and val/images/*.JPEG labelled by val/val_annotations.txt.
#pragma once

#include <string>

#include "common/status.h"
#include "server/data/dataset_options.h"
#include "server/data/dataset_scan.h"

namespace selene::data {

// Scans `folder` (canonical, inside the canonical `data_root`). Classes: options.class_ids (wnids,
// in that order) or the first options.num_classes of wnids.txt (0 = all); names are the first
// synonym in words.txt. Train items come from train/<wnid>/images, val items from val/images with
// labels from val_annotations.txt (a val image it does not list is a warning and left out).
// Stored at min(64, options.image_size). InvalidArgument for an unknown wnid or more classes
// than wnids.txt has; NotFound naming wnids.txt when it is missing.
StatusOr<DatasetScan> ScanTinyImageNet(const std::string& folder, const std::string& data_root,
                                       const DatasetOptions& options);

}  // namespace selene::data
