// The MOON lunar rock segmentation set: renders in images/render, masks in images/ground, paired
// by frame number (render0001.png with ground0001.png). Masks may be binary or the original
// colour-coded ground truth, detected per file when decoding.
#pragma once

#include <string>

#include "common/status.h"
#include "server/data/dataset_options.h"
#include "server/data/dataset_scan.h"

namespace selene::data {

// Scans `folder` (canonical, inside the canonical `data_root`). Layouts, in order of preference:
// train/ and val/ each holding images/render + images/ground (or render/ + ground/), which give
// the data set's own split; or images/render + images/ground (or render/ + ground/) in the
// folder itself. A render or mask without a partner, or without a frame number, is unpaired.
// Binary segmentation only (class "rock"); stored at options.image_size. NotFound naming
// images/render when no layout matches.
StatusOr<DatasetScan> ScanMoon(const std::string& folder, const std::string& data_root,
                               const DatasetOptions& options);

// The frame number of a file name: the last run of digits in its stem ("render0001.png" -> 1),
// or -1 when it has none.
int64_t FrameNumber(const std::string& file_name);

}  // namespace selene::data
