#include "server/jobs/run_outputs.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/data/data_summary.h"
#include "server/report/run_report.h"
#include "server/train/checkpoint.h"
#include "server/train/run_artifacts.h"
#include "spec/json_io.h"

namespace selene::jobs {
namespace {

report::RunReportInputs ReportInputs(const std::string& name, const TrainingPlan& plan,
                                     models::Network network, const TrainingData& data,
                                     const train::TrainResult& result, double total_seconds) {
  report::RunReportInputs report;
  report.name = name;
  report.spec = std::make_shared<const spec::ResolvedJobSpec>(plan.spec);
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

// history.csv and metrics.json: the record of every epoch so far.
Status WriteHistory(const RunFolder& folder, const TrainingPlan& plan,
                    const train::TrainResult& result) {
  SELENE_RETURN_IF_ERROR(train::WriteHistoryCsv(folder.history(), result.history));
  return train::WriteMetricsJson(folder.metrics(), result, plan.trainer.monitor);
}

}  // namespace

Status WriteRunInputs(const RunFolder& folder, const v1::JobSpec& spec, const TrainingData& data) {
  SELENE_RETURN_IF_ERROR(folder.Create());
  SELENE_RETURN_IF_ERROR(folder.Write(RunFolder::kSpec, spec::JobSpecToJson(spec) + "\n"));
  SELENE_RETURN_IF_ERROR(
      folder.Write(RunFolder::kDataSummary, data::DataSummaryToJson(data.summary) + "\n"));
  std::string names;
  for (const std::string& name : data.split.train.class_names) absl::StrAppend(&names, name, "\n");
  return folder.Write(RunFolder::kClassNames, names);
}

StatusOr<std::vector<std::string>> WriteRunResults(
    const RunFolder& folder, const std::string& name, const TrainingPlan& plan,
    models::Network network, const TrainingData& data, const train::TrainResult& result,
    double total_seconds, const std::atomic<bool>* stop) {
  SELENE_RETURN_IF_ERROR(WriteHistory(folder, plan, result));
  if (result.history.empty()) return std::vector<std::string>{};  // stopped before an epoch ended
  // The report shows the best epoch's network, as best.pt holds it.
  if (folder.Has(RunFolder::kBestCheckpoint)) {
    SELENE_RETURN_IF_ERROR(train::LoadCheckpoint(folder.best_checkpoint(), *network));
  }
  report::RunReportInputs report =
      ReportInputs(name, plan, std::move(network), data, result, total_seconds);
  report.stop = stop;
  return report::WriteRunReport(folder, report);
}

Status WriteProgressReport(const RunFolder& folder, const std::string& name,
                           const TrainingPlan& plan, models::Network network,
                           const TrainingData& data, const train::TrainResult& result,
                           double total_seconds) {
  SELENE_RETURN_IF_ERROR(WriteHistory(folder, plan, result));
  if (result.history.empty()) return OkStatus();
  report::RunReportInputs report =
      ReportInputs(name, plan, std::move(network), data, result, total_seconds);
  report.predictions = false;
  return report::WriteRunReport(folder, report).status();
}

}  // namespace selene::jobs
