#include "server/report/run_report.h"

#include <torch/torch.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "models/factory.h"
#include "server/report/confusion_plot.h"
#include "server/report/curves_plot.h"
#include "server/report/report_markdown.h"
#include "server/report/run_summary.h"
#include "server/report/sample_grid.h"
#include "server/train/batch_loader.h"
#include "server/train/metrics.h"

namespace selene::report {
namespace {

constexpr int64_t kBatch = 32;
constexpr int64_t kClassificationSamples = 16;  // a 4 x 4 grid
constexpr int64_t kSegmentationSamples = 4;     // rows of input | prediction | truth

// Restores the network's train/eval mode when the report is done with it.
class EvalModeGuard {
 public:
  explicit EvalModeGuard(models::NetworkImpl& network)
      : network_(network), was_training_(network.is_training()) {
    network_.eval();
  }
  ~EvalModeGuard() { network_.train(was_training_); }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  models::NetworkImpl& network_;
  bool was_training_;
};

// Logits (on the CPU) for uint8 images as stored: normalised and resized to the network's input
// the way the training loader does it; segmentation logits are brought back to the stored size
// so they line up with the stored masks.
torch::Tensor Logits(models::NetworkImpl& network, const torch::Tensor& images_u8,
                     const RunReportInputs& in) {
  torch::Tensor x = train::NormalizeImages(images_u8, in.normalization, in.device);
  const int64_t height = x.size(2), width = x.size(3);
  const bool resize = in.input_size > 0 && (in.input_size != height || in.input_size != width);
  if (resize) {
    x = torch::nn::functional::interpolate(
        x, torch::nn::functional::InterpolateFuncOptions()
               .size(std::vector<int64_t>{in.input_size, in.input_size})
               .mode(torch::kBilinear)
               .align_corners(false));
  }
  torch::Tensor logits = network.forward(x);
  if (resize && logits.dim() == 4) {
    logits =
        torch::nn::functional::interpolate(logits, torch::nn::functional::InterpolateFuncOptions()
                                                       .size(std::vector<int64_t>{height, width})
                                                       .mode(torch::kBilinear)
                                                       .align_corners(false));
  }
  return logits.to(torch::kCPU);
}

// Class ids (classification [N]; segmentation [N, H, W]) from logits.
torch::Tensor Predictions(const torch::Tensor& logits, train::Task task) {
  if (task == train::Task::kBinarySegmentation) {
    return logits.squeeze(1).gt(0.0).to(torch::kUInt8);  // sigmoid > 0.5
  }
  return logits.argmax(1);
}

// `count` indices spread evenly over [0, n): the validation set is often ordered by class, so
// the first few would all show the same one.
torch::Tensor SpreadIndices(int64_t n, int64_t count) {
  count = std::min(n, count);
  std::vector<int64_t> picked;
  for (int64_t i = 0; i < count; ++i) picked.push_back(i * n / count);
  return torch::tensor(picked, torch::kLong);
}

SampleSet MakeSamples(models::NetworkImpl& network, const RunReportInputs& in) {
  const train::TensorDataset& val = *in.validation;
  const train::Task task = val.task;
  const int64_t wanted =
      task == train::Task::kClassification ? kClassificationSamples : kSegmentationSamples;
  const torch::Tensor picked = SpreadIndices(val.size(), wanted);
  SampleSet samples;
  samples.task = task;
  samples.images = val.images.index_select(0, picked);
  samples.truths = val.targets.index_select(0, picked);
  samples.predictions = Predictions(Logits(network, samples.images, in), task);
  samples.class_names = val.class_names;
  samples.ignore_index = val.ignore_index;
  return samples;
}

torch::Tensor Confusion(models::NetworkImpl& network, const RunReportInputs& in) {
  const train::TensorDataset& val = *in.validation;
  train::ClassificationMetrics metrics(val.class_names);
  for (int64_t first = 0; first < val.size(); first += kBatch) {
    const int64_t n = std::min(kBatch, val.size() - first);
    metrics.Add(Logits(network, val.images.narrow(0, first, n), in),
                val.targets.narrow(0, first, n));
  }
  return metrics.confusion();
}

}  // namespace

StatusOr<std::vector<std::string>> WriteRunReport(const RunFolder& folder,
                                                  const RunReportInputs& in) {
  if (in.spec == nullptr || in.network == nullptr || in.validation == nullptr ||
      in.validation->size() == 0) {
    return InvalidArgumentError(
        "run report: needs a spec, a network and a non-empty validation set");
  }
  const train::Task task = in.validation->task;
  std::vector<std::string> written;
  auto path = [&folder](const std::string& name) { return folder.File(name); };
  const auto check_stop = [&in]() -> Status {
    if (in.stop != nullptr && in.stop->load()) return CancelledError("report writing cancelled");
    return OkStatus();
  };

  SELENE_RETURN_IF_ERROR(
      WriteCurvesPng(path("curves.png"), in.result.history, task, in.result.best_epoch));
  written.push_back("curves.png");

  SELENE_RETURN_IF_ERROR(check_stop());
  SampleSet samples;
  torch::Tensor confusion;
  if (in.predictions) {
    try {
      torch::NoGradGuard no_grad;
      EvalModeGuard eval(*in.network);
      samples = MakeSamples(*in.network, in);
      SELENE_RETURN_IF_ERROR(check_stop());
      if (task == train::Task::kClassification) confusion = Confusion(*in.network, in);
    } catch (const std::exception& e) {
      return InternalError(absl::StrCat("run report: predicting validation images: ", e.what()));
    }
  }
  if (in.predictions) {
    SELENE_RETURN_IF_ERROR(WriteSamplesPng(path("samples.png"), samples));
    written.push_back("samples.png");
  }
  if (confusion.defined()) {
    SELENE_RETURN_IF_ERROR(
        WriteConfusionPng(path("confusion.png"), confusion, in.validation->class_names));
    written.push_back("confusion.png");
  }

  SELENE_RETURN_IF_ERROR(check_stop());
  const int64_t parameters = models::CountParameters(*in.network);
  ReportInputs report;
  report.title = in.name;
  report.spec = in.spec;
  report.architecture_table = models::FormatSummary(*in.network);
  report.parameters = parameters;
  report.data_summary = in.data_summary;
  report.history = in.result.history;
  report.best_epoch = in.result.best_epoch;
  report.monitor = in.spec->proto().training().monitor();
  report.images = written;
  SELENE_RETURN_IF_ERROR(WriteReportMarkdown(folder.report(), report));
  written.push_back(RunFolder::kReport);

  SELENE_RETURN_IF_ERROR(WriteRunSummaryJson(
      folder.run_summary(),
      MakeRunSummary(in.name, *in.spec, parameters, in.result, in.total_seconds)));
  written.push_back(RunFolder::kRunSummary);
  return written;
}

}  // namespace selene::report
