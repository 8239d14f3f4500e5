// One training run from its plan to its files: the network built, the data loaded and checked,
// the inputs written, training with checkpoints (resumable), a progress report after every
// epoch, then the results and the report. selene-train and the server's job runner both run
// this; what differs between them is the environment (folder, data, stop flag, resume) and the
// observer (printing epochs, or recording them in the job store).
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "common/run_folder.h"
#include "common/status.h"
#include "models/network.h"
#include "server/jobs/training_data.h"
#include "server/jobs/training_plan.h"
#include "server/train/checkpoint.h"
#include "server/train/trainer.h"

namespace selene::jobs {

struct RunEnvironment {
  RunFolder folder{""};
  std::string name;       // the run's name in its report
  std::string data_root;  // data.path of file data sets is relative to it
  DataLoadOptions data;   // decoding threads, cache, progress (its stop is set from `stop`)
  // Checked between files, images and steps: once set the run stops at the next one, and the
  // result says so. May be null.
  const std::atomic<bool>* stop = nullptr;
  // Continue from the folder's last.pt when it exists (its epochs, best epoch and time count).
  bool resume = false;
  // spec.json holds the spec as the user gave it (selene-train: overrides included) rather than
  // the resolved one (the server: with its device, threads and encoder checkpoint).
  bool write_submitted_spec = false;
  // Asked when `stop` ended training: whether to write the results and report of the epochs
  // done (selene-train: always; the server: for a user's cancel, not for a shutdown, as the job
  // resumes). Empty: no.
  std::function<bool()> results_when_stopped;
};

// Hooks into a run, called on the running thread. Each does nothing by default.
class RunObserver {
 public:
  virtual ~RunObserver() = default;
  // The data is loaded, fits the plan and the inputs are written; training starts next, from
  // `restored` (empty unless resuming).
  virtual void OnStart(const TrainingPlan& /*plan*/, const models::NetworkImpl& /*network*/,
                       const TrainingData& /*data*/, const train::TrainingState& /*restored*/) {}
  virtual void OnStep(const train::StepProgress& /*progress*/) {}
  // After the epoch's checkpoints are written, before its progress report. `so_far`: every
  // epoch of the run up to this one, with the best so far (`record` is best when
  // so_far.best_epoch == record.epoch).
  virtual void OnEpoch(const train::EpochRecord& /*record*/, const train::TrainResult& /*so_far*/) {
  }
  // The observer's own first failure (e.g. the job store could no longer record the epochs):
  // once not OK, training stops at its next step and the run fails with it.
  virtual Status status() const { return OkStatus(); }
  // Asked before every checkpoint and before the results are written: an error ends the run with
  // it and the files stay as they are (the server: the worker no longer holds the job's lease).
  virtual Status BeforeWrite() { return OkStatus(); }
};

struct TrainingRunResult {
  train::TrainResult training;  // the history includes epochs restored from last.pt
  // The stop flag ended the run (before, during or after training): the work done is in last.pt.
  bool stopped = false;
  std::vector<std::string> report_files;  // written by this run, in order
  // Why the results of a stopped run (results_when_stopped) could not be written; OK otherwise.
  Status stopped_results;
  double total_seconds = 0.0;  // this run's and, when resumed, the earlier ones'
};

// Runs `plan` in `environment`. Errors (a bad data set, a checkpoint or report that cannot be
// written, a torch error) come back as statuses; a stop is not an error.
StatusOr<TrainingRunResult> RunTraining(const TrainingPlan& plan, const RunEnvironment& environment,
                                        RunObserver& observer);

}  // namespace selene::jobs
