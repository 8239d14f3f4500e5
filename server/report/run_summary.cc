#include "server/report/run_summary.h"

#include <google/protobuf/util/json_util.h>

#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/durable_file.h"
#include "server/train/trainer.h"
#include "spec/enum_names.h"

namespace selene::report {
namespace {

namespace pb = google::protobuf;

// run_summary.json's spelling ("finetune"), older than the spec's short names ("fine_tune").
std::string SummaryEncoderMode(v1::EncoderMode mode) {
  switch (mode) {
    case v1::ENCODER_MODE_FROZEN:
      return "frozen";
    case v1::ENCODER_MODE_FINE_TUNE:
      return "finetune";
    default:  // unspecified means scratch
      return "scratch";
  }
}

// The parser's message without the context lines it adds under it.
std::string FirstLine(const pb::util::Status& status) {
  const std::string text(status.message().data(), status.message().size());
  return text.substr(0, text.find('\n'));
}

}  // namespace

v1::RunSummary MakeRunSummary(const std::string& name, const spec::ResolvedJobSpec& spec,
                              int64_t parameters, const train::TrainResult& result,
                              double total_seconds) {
  const v1::JobSpec& resolved_spec = spec.proto();
  v1::RunSummary summary;
  summary.set_name(name);
  summary.set_task(resolved_spec.task());
  switch (resolved_spec.model().family_case()) {
    case v1::ModelSpec::kClassifier:
      summary.set_model_family("classifier");
      break;
    case v1::ModelSpec::kUnet:
      summary.set_model_family("unet");
      break;
    case v1::ModelSpec::kEncoderUnet:
      summary.set_model_family("encoder_unet");
      summary.set_encoder_mode(
          SummaryEncoderMode(resolved_spec.model().encoder_unet().encoder_mode()));
      break;
    case v1::ModelSpec::FAMILY_NOT_SET:
      break;
  }
  summary.set_parameters(parameters);
  summary.set_data_kind(spec::DataKindName(resolved_spec.data().kind()));
  summary.set_image_size(resolved_spec.data().image_size());
  summary.set_monitor(resolved_spec.training().monitor());
  summary.set_epochs_run(static_cast<int64_t>(result.history.size()));
  summary.set_total_seconds(total_seconds);
  summary.set_stopped_early(result.stopped_early);
  summary.set_cancelled(result.cancelled);
  for (const train::EpochRecord& r : result.history) {
    if (r.epoch != result.best_epoch) continue;
    summary.set_best_epoch(r.epoch + 1);
    summary.set_best_value(result.best_value);
    summary.set_best_val_loss(r.val_loss);
    summary.mutable_best_metrics()->insert(r.val_metrics.begin(), r.val_metrics.end());
  }
  if (!result.history.empty()) {
    const train::EpochRecord& last = result.history.back();
    summary.set_final_val_loss(last.val_loss);
    summary.mutable_final_metrics()->insert(last.val_metrics.begin(), last.val_metrics.end());
  }
  return summary;
}

Status WriteRunSummaryJson(const std::string& path, const v1::RunSummary& summary) {
  pb::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  const auto printed = pb::util::MessageToJsonString(summary, &json, options);
  if (!printed.ok()) {
    return InternalError(absl::StrCat("run summary ", path, ": ", FirstLine(printed)));
  }
  return WriteFileDurably(path, json);
}

StatusOr<v1::RunSummary> ReadRunSummaryJson(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    return NotFoundError(path + ": no such file");
  }
  std::ifstream in(path);
  if (!in) return NotFoundError(path + ": cannot be opened");
  std::stringstream text;
  text << in.rdbuf();
  pb::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  v1::RunSummary summary;
  const auto parsed = pb::util::JsonStringToMessage(text.str(), &summary, options);
  if (!parsed.ok()) {
    return InvalidArgumentError(absl::StrCat(path, ": not a run summary: ", FirstLine(parsed)));
  }
  return summary;
}

}  // namespace selene::report
