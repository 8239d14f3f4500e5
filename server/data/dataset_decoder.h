// Decodes every item of a scanned data set once, on a small thread pool, into uint8 image
// tensors at the storage size and targets in the Task's format; unreadable items are named
// and left out.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>

#include "common/status.h"
#include "server/data/dataset_scan.h"
#include "server/data/decoded_set.h"

namespace selene::data {

inline constexpr size_t kEmptyMaskExamples = 5;

// Items come out in scan order; the result does not depend on `threads` (0 = hardware threads).
// An image or mask that cannot be read, or a mask whose size differs from its image's, makes its
// item unreadable. InvalidArgument, naming the file and the value, when a label image holds an
// id >= scan.num_classes that is not `ignore_index`. Once `stop` (may be null) is set, the files
// not yet started are skipped and the result is Cancelled.
StatusOr<DecodedSet> DecodeScan(const DatasetScan& scan, int64_t ignore_index, int threads,
                                const std::function<void(int64_t, int64_t)>& on_progress,
                                const std::atomic<bool>* stop = nullptr);

}  // namespace selene::data
