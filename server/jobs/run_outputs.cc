#include "server/jobs/run_outputs.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/durable_file.h"
#include "server/data/data_summary.h"
#include "server/jobs/job_spec.h"
#include "server/report/run_report.h"
#include "server/train/checkpoint.h"
#include "server/train/run_artifacts.h"

namespace selene::jobs {
namespace {

namespace fs = std::filesystem;

Status WriteTextFile(const fs::path& path, const std::string& text) {
  return WriteFileDurably(path.string(), text);
}

report::RunReportInputs ReportInputs(const std::string& name, const TrainingPlan& plan,
                                     models::Network network, const TrainingData& data,
                                     const train::TrainResult& result, double total_seconds) {
  report::RunReportInputs report;
  report.name = name;
  report.resolved_spec = plan.resolved_spec;
  report.network = std::move(network);
  report.validation = &data.split.val;
  report.normalization = plan.trainer.normalization;
  report.input_size = plan.trainer.input_size;
  report.device = plan.trainer.device;
  report.result = result;
  report.data_summary = data::FormatDataSummary(data.summary);
  report.total_seconds = total_seconds;
  return report;
}

}  // namespace

Status WriteRunInputs(const std::string& dir, const v1::JobSpec& spec, const TrainingData& data) {
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) return InternalError(absl::StrCat(dir, ": cannot create: ", error.message()));
  const fs::path folder(dir);
  SELENE_RETURN_IF_ERROR(WriteTextFile(folder / kSpecFile, JobSpecToJson(spec) + "\n"));
  SELENE_RETURN_IF_ERROR(
      WriteTextFile(folder / kDataSummaryFile, data::DataSummaryToJson(data.summary) + "\n"));
  std::string names;
  for (const std::string& name : data.split.train.class_names) absl::StrAppend(&names, name, "\n");
  return WriteTextFile(folder / kClassNamesFile, names);
}

StatusOr<std::vector<std::string>> WriteRunResults(
    const std::string& dir, const std::string& name, const TrainingPlan& plan,
    models::Network network, const TrainingData& data, const train::TrainResult& result,
    double total_seconds, const std::atomic<bool>* stop) {
  const fs::path folder(dir);
  SELENE_RETURN_IF_ERROR(train::WriteHistoryCsv((folder / "history.csv").string(), result.history));
  SELENE_RETURN_IF_ERROR(
      train::WriteMetricsJson((folder / "metrics.json").string(), result, plan.trainer.monitor));
  if (result.history.empty()) return std::vector<std::string>{};  // stopped before an epoch ended
  // The report shows the best epoch's network, as best.pt holds it.
  if (fs::exists(folder / "best.pt")) {
    SELENE_RETURN_IF_ERROR(train::LoadCheckpoint((folder / "best.pt").string(), *network));
  }
  report::RunReportInputs report =
      ReportInputs(name, plan, std::move(network), data, result, total_seconds);
  report.stop = stop;
  return report::WriteRunReport(dir, report);
}

Status WriteProgressReport(const std::string& dir, const std::string& name,
                           const TrainingPlan& plan, models::Network network,
                           const TrainingData& data, const train::TrainResult& result,
                           double total_seconds) {
  const fs::path folder(dir);
  SELENE_RETURN_IF_ERROR(train::WriteHistoryCsv((folder / "history.csv").string(), result.history));
  SELENE_RETURN_IF_ERROR(
      train::WriteMetricsJson((folder / "metrics.json").string(), result, plan.trainer.monitor));
  if (result.history.empty()) return OkStatus();
  report::RunReportInputs report =
      ReportInputs(name, plan, std::move(network), data, result, total_seconds);
  report.predictions = false;
  return report::WriteRunReport(dir, report).status();
}

}  // namespace selene::jobs
