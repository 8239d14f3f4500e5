// Segmentation folders (CamVid style): images and label images with the same file names, the
// labels holding class ids as 8-bit grey values, or colours mapped by a class_dict.csv palette.
// For multi-class work; a binary task reads any nonzero label as foreground.
#pragma once

#include <string>

#include "common/status.h"
#include "server/data/dataset_options.h"
#include "server/data/dataset_scan.h"

namespace selene::data {

// Scans `folder` (canonical, inside the canonical `data_root`). Layouts: train/ + trainannot/
// with val/ + valannot/ (the data set's own split; without val/, validation is split off train),
// or images/ + masks/. Images and masks pair by file stem (name without extension).
// Classes: options.class_ids, else classes.txt (line i = id i), else class_dict.csv (row i = id
// i; its presence makes masks colour-coded, exact colours, unmatched -> the ignore id), else
// "class_0".."class_{K-1}" with K = options.num_classes (required then). Every source given must
// agree on K. Multi-class or binary segmentation; stored at options.image_size.
StatusOr<DatasetScan> ScanSegmentationFolder(const std::string& folder,
                                             const std::string& data_root,
                                             const DatasetOptions& options);

}  // namespace selene::data
