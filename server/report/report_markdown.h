// report.md: one run explained for a person: what was trained, how well, with which settings,
// on which data, with its plots and its epoch-by-epoch history.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "selene/v1/job_spec.pb.h"
#include "server/train/epoch_record.h"
#include "spec/resolved_job_spec.h"

namespace selene::report {

struct ReportInputs {
  std::string title;                                  // the run's name
  std::shared_ptr<const spec::ResolvedJobSpec> spec;  // task, model, data, hyperparameters
  std::string architecture_table;  // models::FormatSummary output, shown as a code block
  int64_t parameters = 0;
  std::string data_summary;  // the data reader's description, shown as a code block
  std::vector<train::EpochRecord> history;
  int64_t best_epoch = -1;          // 0-based, as in EpochRecord; -1 = none
  std::string monitor;              // "" = the spec's training.monitor
  std::vector<std::string> images;  // file names next to report.md: curves.png, samples.png...
};

// Sections: title; a summary paragraph (task, model, parameters, data, best epoch and its
// monitored value); "Metrics" (val loss, train loss and the task's main metrics at the best
// and final epochs, then per-class metrics of the best epoch when there are at most 30
// classes); "Hyperparameters"; "Architecture"; "Data"; "Plots" (each image embedded);
// "History" (epoch, losses, headline metric, learning rate, seconds; the best epoch in bold)
// when at most 100 epochs. Numbers with 4 decimals, "-" when undefined. Errors name the path.
Status WriteReportMarkdown(const std::string& path, const ReportInputs& inputs);

// The same document as a string (what WriteReportMarkdown writes).
std::string FormatReportMarkdown(const ReportInputs& inputs);

}  // namespace selene::report
