// Cross-run comparison: several runs' summaries as one Markdown table per task (e.g. the plain
// U-Net against the encoder U-Net, frozen and fine-tuned), best value of each column in bold.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "selene/v1/run_summary.pb.h"

namespace selene::report {

// One row per run, in the given order. Columns: run, model, parameters, encoder mode, best
// epoch (of epochs run), val loss at the best epoch, then the best epoch's validation metrics
// by task: binary segmentation Dice, IoU, pixel accuracy; multi-class mean Dice, mean IoU, pixel
// accuracy; classification top-1, top-5, macro F1. Numbers right-aligned with 4 decimals
// ("-" when undefined), parameters with thousands separators; with two runs or more, the best
// value of each metric column (lowest val loss) is bold. Runs of different tasks: one table per
// task, each under a bold task name, tasks in order of first appearance.
std::string FormatComparisonTable(const std::vector<v1::RunSummary>& runs);

// Reads DIR/run_summary.json of each run folder and formats them. A run without a name takes
// its folder's name. Errors name the folder and the file: NotFound for a missing folder or
// summary, InvalidArgument for a bad one or for no folders at all.
StatusOr<std::string> CompareRunDirs(const std::vector<std::string>& dirs);

}  // namespace selene::report
