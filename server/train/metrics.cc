// Validation metrics from confusion counts. The heavy work (argmax, threshold) stays on the
// logits' device; only a handful of int64 counts per batch cross to the CPU, where they are
// summed exactly, so the scores of a pass do not depend on how it was cut into batches.
//
// Conventions (all fixed here so that epochs and runs compare):
// - Classification precision / recall / F1 follow sklearn's zero_division=0: a ratio with a zero
//   denominator is 0. macro_f1 averages over all K classes, so a class with no support and no
//   prediction counts as F1 = 0 (sklearn's f1_score(labels=range(K), average="macro",
//   zero_division=0)); the denominator never changes with what the validation set holds.
// - Binary segmentation: a pass with no positive pixel in truth nor prediction scores
//   dice = iou = 1 (nothing to find, nothing falsely found).
// - Multi-class segmentation: a class absent from truth and prediction over the whole pass has
//   dice/iou NaN and is left out of mean_dice / mean_iou.
// - Targets outside [0, K) (the loss's ignore_index, a void label) are not counted at all.
// - A pass that counted nothing reports NaN accuracies: there is no score to give.
#include "server/train/metrics.h"

#include <cmath>
#include <limits>
#include <utility>

namespace selene::train {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double Ratio(int64_t num, int64_t den, double if_zero) {
  return den == 0 ? if_zero : static_cast<double>(num) / static_cast<double>(den);
}

std::vector<std::string> NumberedNames(int64_t k) {
  std::vector<std::string> names;
  for (int64_t i = 0; i < k; ++i) names.push_back(std::to_string(i));
  return names;
}

// Counts (target, prediction) pairs into K * K int64 bins, row-major [truth, prediction], on
// the inputs' device. Pairs with `valid` false go to an extra bin that is dropped, which keeps
// the count free of a data-dependent masked_select.
torch::Tensor ConfusionBins(const torch::Tensor& targets, const torch::Tensor& predictions,
                            const torch::Tensor& valid, int64_t k) {
  const torch::Tensor index =
      torch::where(valid, targets * k + predictions, torch::full_like(targets, k * k));
  return torch::bincount(index.flatten(), {}, k * k + 1).slice(0, 0, k * k).to(torch::kLong);
}

// Sets the class count from the first batch when no names were given, else checks it.
void FitClasses(std::vector<std::string>& names, torch::Tensor& confusion, int64_t k) {
  if (names.empty()) names = NumberedNames(k);
  TORCH_CHECK(static_cast<int64_t>(names.size()) == k, "metrics: logits have ", k, " classes but ",
              names.size(), " class names were given");
  if (!confusion.defined()) confusion = torch::zeros({k, k}, torch::kLong);
}

torch::Tensor ZerosOrUndefined(const std::vector<std::string>& names) {
  const int64_t k = static_cast<int64_t>(names.size());
  return k == 0 ? torch::Tensor() : torch::zeros({k, k}, torch::kLong);
}

// Per-class totals of a [K, K] confusion matrix (rows truth, columns prediction).
struct ClassCounts {
  std::vector<int64_t> tp, support, predicted;
  int64_t total = 0, correct = 0;
};

ClassCounts CountsOf(const torch::Tensor& confusion) {
  ClassCounts c;
  if (!confusion.defined()) return c;
  const int64_t k = confusion.size(0);
  const auto m = confusion.accessor<int64_t, 2>();
  c.tp.assign(k, 0);
  c.support.assign(k, 0);
  c.predicted.assign(k, 0);
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = 0; j < k; ++j) {
      c.support[i] += m[i][j];
      c.predicted[j] += m[i][j];
      c.total += m[i][j];
    }
    c.tp[i] = m[i][i];
    c.correct += m[i][i];
  }
  return c;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Classification

ClassificationMetrics::ClassificationMetrics(std::vector<std::string> class_names)
    : class_names_(std::move(class_names)), confusion_(ZerosOrUndefined(class_names_)) {}

void ClassificationMetrics::Add(const torch::Tensor& logits, const torch::Tensor& targets) {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(logits.dim() == 2, "classification metrics want logits [N, K], got ", logits.sizes());
  const int64_t k = logits.size(1);
  FitClasses(class_names_, confusion_, k);
  const torch::Tensor t = targets.to(logits.device(), torch::kLong).flatten();
  TORCH_CHECK(t.numel() == logits.size(0), "classification metrics: ", t.numel(), " targets for ",
              logits.size(0), " logits");
  const torch::Tensor valid = (t >= 0) & (t < k);
  torch::Tensor counts = ConfusionBins(t, logits.argmax(1), valid, k);
  if (k >= 5) {
    const torch::Tensor top5 = std::get<1>(logits.topk(5, 1));
    const torch::Tensor hits = ((top5 == t.unsqueeze(1)).any(1) & valid).sum().to(torch::kLong);
    counts = torch::cat({counts, hits.view({1})});
  }
  // One small transfer per batch: the K * K bins, then the top-5 hits.
  const torch::Tensor cpu = counts.to(torch::kCPU);
  confusion_ += cpu.slice(0, 0, k * k).view({k, k});
  if (k >= 5) top5_hits_ += cpu[k * k].item<int64_t>();
  // The count is taken from the matrix itself so the two can never disagree.
  count_ = confusion_.sum().item<int64_t>();
}

MetricValues ClassificationMetrics::Compute() const {
  MetricValues values;
  const ClassCounts c = CountsOf(confusion_);
  const int64_t k = static_cast<int64_t>(class_names_.size());
  values["top1"] = Ratio(c.correct, c.total, kNaN);
  if (k >= 5) values["top5"] = Ratio(top5_hits_, count_, kNaN);
  double f1_sum = 0;
  for (int64_t i = 0; i < k; ++i) {
    const int64_t tp = c.tp.empty() ? 0 : c.tp[i];
    const int64_t support = c.support.empty() ? 0 : c.support[i];
    const int64_t predicted = c.predicted.empty() ? 0 : c.predicted[i];
    const std::string& name = class_names_[i];
    values["precision/" + name] = Ratio(tp, predicted, 0.0);
    values["recall/" + name] = Ratio(tp, support, 0.0);
    // 2PR / (P + R) written on counts: 2TP / (support + predicted), 0 when both are 0.
    const double f1 = Ratio(2 * tp, support + predicted, 0.0);
    values["f1/" + name] = f1;
    f1_sum += f1;
  }
  values["macro_f1"] = k > 0 ? f1_sum / static_cast<double>(k) : kNaN;
  return values;
}

void ClassificationMetrics::Reset() {
  confusion_ = ZerosOrUndefined(class_names_);
  top5_hits_ = 0;
  count_ = 0;
}

// ---------------------------------------------------------------------------------------------
// Binary segmentation

BinarySegmentationMetrics::BinarySegmentationMetrics(double threshold) : threshold_(threshold) {}

void BinarySegmentationMetrics::Add(const torch::Tensor& logits, const torch::Tensor& targets) {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(logits.dim() >= 2 && logits.size(1) == 1,
              "binary segmentation metrics want logits [N, 1, H, W], got ", logits.sizes());
  torch::Tensor t = targets.to(logits.device(), torch::kFloat);
  if (t.dim() == logits.dim() - 1) t = t.unsqueeze(1);
  TORCH_CHECK(t.sizes() == logits.sizes(), "binary targets of shape ", targets.sizes(),
              " do not fit logits of shape ", logits.sizes());
  // Float targets may be soft or resampled masks: anything above one half is foreground.
  const torch::Tensor truth = (t > 0.5).to(torch::kLong);
  const torch::Tensor pred =
      (torch::sigmoid(logits.to(torch::kFloat)) > threshold_).to(torch::kLong);
  // Bin = 2 * truth + pred: 0 = TN, 1 = FP, 2 = FN, 3 = TP.
  const torch::Tensor counts = torch::bincount((truth * 2 + pred).flatten(), {}, 4).to(torch::kCPU);
  const auto c = counts.accessor<int64_t, 1>();
  tn_ += c[0];
  fp_ += c[1];
  fn_ += c[2];
  tp_ += c[3];
}

MetricValues BinarySegmentationMetrics::Compute() const {
  const int64_t total = tp_ + fp_ + fn_ + tn_;
  const int64_t errors_and_hits = tp_ + fp_ + fn_;
  // Empty truth and empty prediction: a perfect answer, not an undefined one.
  const double if_empty = total == 0 ? kNaN : 1.0;
  return {
      {"dice", Ratio(2 * tp_, 2 * tp_ + fp_ + fn_, if_empty)},
      {"iou", Ratio(tp_, errors_and_hits, if_empty)},
      {"pixel_accuracy", Ratio(tp_ + tn_, total, kNaN)},
  };
}

void BinarySegmentationMetrics::Reset() { tp_ = fp_ = fn_ = tn_ = 0; }

// ---------------------------------------------------------------------------------------------
// Multi-class segmentation

MultiClassSegmentationMetrics::MultiClassSegmentationMetrics(std::vector<std::string> class_names,
                                                             int64_t ignore_index)
    : class_names_(std::move(class_names)),
      ignore_index_(ignore_index),
      confusion_(ZerosOrUndefined(class_names_)) {}

void MultiClassSegmentationMetrics::Add(const torch::Tensor& logits, const torch::Tensor& targets) {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(logits.dim() >= 2, "multi-class metrics want logits [N, K, ...], got ",
              logits.sizes());
  const int64_t k = logits.size(1);
  FitClasses(class_names_, confusion_, k);
  const torch::Tensor t = targets.to(logits.device(), torch::kLong);
  std::vector<int64_t> expected = logits.sizes().vec();
  expected.erase(expected.begin() + 1);
  TORCH_CHECK(t.sizes() == torch::IntArrayRef(expected), "multi-class targets of shape ",
              targets.sizes(), " do not fit logits of shape ", logits.sizes());
  const torch::Tensor valid = (t != ignore_index_) & (t >= 0) & (t < k);
  confusion_ += ConfusionBins(t, logits.argmax(1), valid, k).to(torch::kCPU).view({k, k});
}

MetricValues MultiClassSegmentationMetrics::Compute() const {
  MetricValues values;
  const ClassCounts c = CountsOf(confusion_);
  const int64_t k = static_cast<int64_t>(class_names_.size());
  values["pixel_accuracy"] = Ratio(c.correct, c.total, kNaN);
  double dice_sum = 0, iou_sum = 0;
  int64_t present = 0;
  for (int64_t i = 0; i < k; ++i) {
    const int64_t tp = c.tp.empty() ? 0 : c.tp[i];
    const int64_t support = c.support.empty() ? 0 : c.support[i];
    const int64_t predicted = c.predicted.empty() ? 0 : c.predicted[i];
    // support + predicted = 0 means the class never appeared: no score, rather than a free 1
    // that would inflate the mean.
    const double dice = Ratio(2 * tp, support + predicted, kNaN);
    const double iou = Ratio(tp, support + predicted - tp, kNaN);
    values["dice/" + class_names_[i]] = dice;
    values["iou/" + class_names_[i]] = iou;
    if (!std::isnan(dice)) {
      dice_sum += dice;
      iou_sum += iou;
      ++present;
    }
  }
  values["mean_dice"] = present > 0 ? dice_sum / static_cast<double>(present) : kNaN;
  values["mean_iou"] = present > 0 ? iou_sum / static_cast<double>(present) : kNaN;
  return values;
}

void MultiClassSegmentationMetrics::Reset() { confusion_ = ZerosOrUndefined(class_names_); }

// ---------------------------------------------------------------------------------------------

std::unique_ptr<MetricAccumulator> MakeMetrics(Task task, std::vector<std::string> class_names,
                                               int64_t ignore_index) {
  switch (task) {
    case Task::kClassification:
      return std::make_unique<ClassificationMetrics>(std::move(class_names));
    case Task::kBinarySegmentation:
      return std::make_unique<BinarySegmentationMetrics>();
    case Task::kMultiClassSegmentation:
      return std::make_unique<MultiClassSegmentationMetrics>(std::move(class_names), ignore_index);
  }
  return nullptr;
}

bool HigherIsBetter(const std::string& metric) { return metric.find("loss") == std::string::npos; }

}  // namespace selene::train
