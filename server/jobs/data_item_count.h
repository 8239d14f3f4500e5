// How many items a file data set holds, counted from its folder layout without reading an image
// (a shallow directory walk), so admission can size the decoded set before accepting a job.
#pragma once

#include <cstdint>
#include <string>

#include "selene/v1/job_spec.pb.h"

namespace selene::jobs {

// The images of a MOON folder (files in its render/ folders: images/render, render/, and those
// under train/ and val/) or of a segmentation folder (files in images/, train/ and val/); -1 for
// other kinds, where the caller knows better (Tiny ImageNet: 550 per class). `folder` is the data
// set's resolved path. Unreadable folders count 0: the estimate is rough, the data loader is the
// one that reports problems.
int64_t CountDataItems(v1::DataKind kind, const std::string& folder);

}  // namespace selene::jobs
