// The data a planned run trains on: synthetic sets generated in memory, or files read through
// server/data/ (decoded once, optionally cached on disk), each with a summary that is printed
// by `selene-train --inspect` and saved with every run.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "common/status.h"
#include "server/data/data_summary.h"
#include "server/train/tensor_dataset.h"
#include "spec/engine_options.h"

namespace selene::jobs {

struct DataLoadOptions {
  int decode_threads = 0;  // 0 = every hardware thread
  std::string cache_dir;   // "" = decode every time; else the decoded cache persists there
  std::function<void(int64_t done, int64_t total)> on_progress;  // files decoded; may be empty
  // Checked between files decoded and images generated: once set, the load returns Cancelled
  // within one file or one chunk of images. May be null.
  const std::atomic<bool>* stop = nullptr;
};

struct TrainingData {
  train::TrainValSplit split;
  data::DataSummary summary;
  bool cache_hit = false;  // the decoded images came from cache_dir
};

// The train/validation split `request` describes, with its summary. File kinds read
// request.path under `data_root` (a path escaping it is refused); a data set with no usable
// items is FailedPrecondition, unreadable or unpaired files are warnings in the summary.
StatusOr<TrainingData> LoadTrainingData(const spec::DataRequest& request,
                                        const std::string& data_root,
                                        const DataLoadOptions& options = {});

}  // namespace selene::jobs
