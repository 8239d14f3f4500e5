#include "server/report/run_comparison.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/markdown_table.h"
#include "common/number_format.h"
#include "common/run_folder.h"
#include "server/report/main_metrics.h"
#include "server/report/run_summary.h"
#include "spec/engine_options.h"

namespace selene::report {
namespace {

using Align = MarkdownTable::Align;

std::string ModelName(const std::string& family) {
  if (family == "unet") return "U-Net";
  if (family == "encoder_unet") return "encoder U-Net";
  return family.empty() ? "-" : family;
}

double Metric(const v1::RunSummary& run, const std::string& name) {
  auto it = run.best_metrics().find(name);
  return it == run.best_metrics().end() ? std::numeric_limits<double>::quiet_NaN() : it->second;
}

// Cells of one numeric column, the best finite value in bold when two runs or more have one.
std::vector<std::string> NumberColumn(const std::vector<double>& values, bool higher_is_better) {
  std::vector<std::string> cells;
  double best = higher_is_better ? -std::numeric_limits<double>::infinity()
                                 : std::numeric_limits<double>::infinity();
  int finite = 0;
  for (double v : values) {
    cells.push_back(FormatValue(v));
    if (!std::isfinite(v)) continue;
    ++finite;
    best = higher_is_better ? std::max(best, v) : std::min(best, v);
  }
  if (finite < 2) return cells;
  for (size_t i = 0; i < values.size(); ++i) {
    // Compared as printed, so values that read the same are bold together.
    if (std::isfinite(values[i]) && cells[i] == FormatValue(best))
      cells[i] = "**" + cells[i] + "**";
  }
  return cells;
}

std::string TaskTable(const std::vector<const v1::RunSummary*>& runs) {
  const std::vector<std::string> metrics = MainMetrics(spec::ToTrainTask(runs.front()->task()));
  MarkdownTable table;
  table.AddColumn("run")
      .AddColumn("model")
      .AddColumn("parameters", Align::kRight)
      .AddColumn("encoder mode")
      .AddColumn("best epoch", Align::kRight)
      .AddColumn("val loss", Align::kRight);
  for (const std::string& m : metrics) table.AddColumn(MetricLabel(m), Align::kRight);

  std::vector<std::vector<std::string>> numbers;  // per numeric column, per run
  std::vector<double> losses;
  for (const v1::RunSummary* run : runs) losses.push_back(run->best_val_loss());
  numbers.push_back(NumberColumn(losses, /*higher_is_better=*/false));
  for (const std::string& m : metrics) {
    std::vector<double> values;
    for (const v1::RunSummary* run : runs) values.push_back(Metric(*run, m));
    numbers.push_back(NumberColumn(values, /*higher_is_better=*/true));
  }
  for (size_t i = 0; i < runs.size(); ++i) {
    const v1::RunSummary& run = *runs[i];
    if (run.best_epoch() <= 0) {  // no epoch finished: nothing to compare
      for (auto& column : numbers) column[i] = "-";
    }
    std::vector<std::string> row = {
        run.name().empty() ? "-" : run.name(),
        ModelName(run.model_family()),
        Grouped(run.parameters()),
        run.encoder_mode().empty() ? "-" : run.encoder_mode(),
        run.best_epoch() > 0 ? absl::StrCat(run.best_epoch(), " / ", run.epochs_run()) : "-",
    };
    for (const auto& column : numbers) row.push_back(column[i]);
    table.AddRow(std::move(row));
  }
  return table.Render();
}

}  // namespace

std::string FormatComparisonTable(const std::vector<v1::RunSummary>& runs) {
  if (runs.empty()) return "_No runs to compare._\n";
  std::vector<v1::Task> order;
  for (const v1::RunSummary& run : runs) {
    if (std::find(order.begin(), order.end(), run.task()) == order.end()) {
      order.push_back(run.task());
    }
  }
  std::string out;
  for (v1::Task task : order) {
    std::vector<const v1::RunSummary*> group;
    for (const v1::RunSummary& run : runs) {
      if (run.task() == task) group.push_back(&run);
    }
    if (order.size() > 1) {
      if (!out.empty()) out += "\n";
      absl::StrAppend(&out, "**", TaskTitle(spec::ToTrainTask(task)), "**\n\n");
    }
    out += TaskTable(group);
  }
  return out;
}

StatusOr<std::string> CompareRunDirs(const std::vector<std::string>& dirs) {
  if (dirs.empty()) return InvalidArgumentError("compare runs: no run folders given");
  std::vector<v1::RunSummary> runs;
  for (const std::string& dir : dirs) {
    std::error_code error;
    if (!std::filesystem::is_directory(dir, error)) {
      return NotFoundError("run folder " + dir + " does not exist");
    }
    const std::string path = RunFolder(dir).run_summary();
    StatusOr<v1::RunSummary> run = ReadRunSummaryJson(path);
    if (!run.ok()) {
      return Status(run.status().code(),
                    absl::StrCat("run folder ", dir, ": ", run.status().message()));
    }
    if (run->name().empty()) {
      std::filesystem::path folder(dir);
      if (!folder.has_filename()) folder = folder.parent_path();  // "runs/a/"
      run->set_name(folder.filename().string());
    }
    runs.push_back(*std::move(run));
  }
  return FormatComparisonTable(runs);
}

}  // namespace selene::report
