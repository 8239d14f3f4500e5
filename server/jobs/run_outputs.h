// The files a training run leaves in its folder (common/run_folder.h), written the same way by
// selene-train (local runs) and the server's job runner through RunTraining, so a run's folder
// reads alike whichever ran it.
//   before training: spec.json, data_summary.json, class_names.txt (serving reads the names)
//   after every epoch: history.csv, metrics.json and the report without predictions
//   after training:  history.csv, metrics.json, then the report (curves.png, samples.png,
//                    confusion.png, report.md, run_summary.json) from best.pt's weights
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "common/run_folder.h"
#include "common/status.h"
#include "models/network.h"
#include "selene/v1/job_spec.pb.h"
#include "server/jobs/training_data.h"
#include "server/jobs/training_plan.h"
#include "server/train/trainer.h"

namespace selene::jobs {

// Creates the folder and writes `spec` (selene-train: the user's spec with its overrides; the
// server: the resolved one), the data summary and the class names.
Status WriteRunInputs(const RunFolder& folder, const v1::JobSpec& spec, const TrainingData& data);

// Writes history.csv and metrics.json, loads best.pt (when there is one) into `network` and
// writes the report under `name`. Returns the report's file names (none when no epoch ended).
// Once `stop` (may be null) is set, stops before the next report file with Cancelled.
StatusOr<std::vector<std::string>> WriteRunResults(
    const RunFolder& folder, const std::string& name, const TrainingPlan& plan,
    models::Network network, const TrainingData& data, const train::TrainResult& result,
    double total_seconds, const std::atomic<bool>* stop = nullptr);

// After every epoch, while the run goes on: history.csv, metrics.json and the report without
// predictions (curves.png, report.md, run_summary.json), so a crash or a cancel at any moment
// leaves the report of the epochs finished. `network` is the one training: only its
// architecture is read, never its weights, and nothing is loaded into it.
Status WriteProgressReport(const RunFolder& folder, const std::string& name,
                           const TrainingPlan& plan, models::Network network,
                           const TrainingData& data, const train::TrainResult& result,
                           double total_seconds);

}  // namespace selene::jobs
