// Everything a finished run leaves for people besides checkpoints: predictions of the trained
// network on validation images (samples.png), the confusion matrix (confusion.png), the curves,
// report.md and run_summary.json. Used by selene-train now and by the server's job runner later,
// so both write the same files.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "common/run_folder.h"
#include "common/status.h"
#include "models/network.h"
#include "selene/v1/job_spec.pb.h"
#include "server/train/tensor_dataset.h"
#include "server/train/trainer.h"
#include "spec/resolved_job_spec.h"

namespace selene::report {

struct RunReportInputs {
  std::string name;  // the run's name (spec name, or the output folder)
  std::shared_ptr<const spec::ResolvedJobSpec> spec;
  models::Network network;                           // with the weights to show (best.pt's)
  const train::TensorDataset* validation = nullptr;  // must outlive the call
  train::Normalization normalization;
  int64_t input_size = 0;  // the network's input side; 0 = as stored
  torch::Device device = torch::kCPU;
  train::TrainResult result;
  std::string data_summary;  // human text about the data, for report.md
  double total_seconds = 0.0;
  // Checked before each file: once set, the report stops with Cancelled (a shutdown or a cancel
  // must not wait for the predictions on a large validation set). May be null.
  const std::atomic<bool>* stop = nullptr;
  // false: no predictions (samples.png, confusion.png) and the network's weights are not used,
  // only its architecture: the report a run keeps up to date after every epoch.
  bool predictions = true;
};

// The files written into `folder`, in order: curves.png, samples.png, confusion.png
// (classification only; both only with `predictions`), report.md, run_summary.json. Stops at
// the first failure, naming the file.
StatusOr<std::vector<std::string>> WriteRunReport(const RunFolder& folder,
                                                  const RunReportInputs& inputs);

}  // namespace selene::report
