// Validation metrics accumulated over a whole pass (never averaged per batch): the
// accumulators add confusion counts batch by batch and compute scores once at the end.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "server/train/task.h"

namespace selene::train {

// Scores by name, e.g. "top1", "macro_f1", "dice", "iou", "pixel_accuracy", "mean_dice".
// Per-class entries use "<metric>/<class name>" (e.g. "f1/cat", "dice/road").
using MetricValues = std::map<std::string, double>;

class MetricAccumulator {
 public:
  virtual ~MetricAccumulator() = default;
  // logits and targets as in task.h; called once per validation batch (any device).
  virtual void Add(const torch::Tensor& logits, const torch::Tensor& targets) = 0;
  virtual MetricValues Compute() const = 0;
  virtual void Reset() = 0;
};

// Classification: top1, top5 (when K >= 5), macro_f1, precision/<c>, recall/<c>, f1/<c>.
class ClassificationMetrics : public MetricAccumulator {
 public:
  explicit ClassificationMetrics(std::vector<std::string> class_names);
  void Add(const torch::Tensor& logits, const torch::Tensor& targets) override;
  MetricValues Compute() const override;
  void Reset() override;
  // Rows: true class, columns: predicted class.
  const torch::Tensor& confusion() const { return confusion_; }

 private:
  std::vector<std::string> class_names_;
  torch::Tensor confusion_;  // int64 [K, K] on CPU
  int64_t top5_hits_ = 0;
  int64_t count_ = 0;
};

// Binary segmentation at `threshold` on the sigmoid: dice, iou, pixel_accuracy, computed over
// all pixels of the pass. A pass where prediction and truth are both empty scores dice = iou = 1.
class BinarySegmentationMetrics : public MetricAccumulator {
 public:
  explicit BinarySegmentationMetrics(double threshold = 0.5);
  void Add(const torch::Tensor& logits, const torch::Tensor& targets) override;
  MetricValues Compute() const override;
  void Reset() override;

 private:
  double threshold_;
  int64_t tp_ = 0, fp_ = 0, fn_ = 0, tn_ = 0;
};

// Multi-class segmentation: pixel_accuracy, mean_dice, mean_iou, dice/<c>, iou/<c>, with
// pixels whose target is `ignore_index` left out. A class absent from both prediction and
// truth is left out of the means (reported as NaN per class).
class MultiClassSegmentationMetrics : public MetricAccumulator {
 public:
  MultiClassSegmentationMetrics(std::vector<std::string> class_names, int64_t ignore_index);
  void Add(const torch::Tensor& logits, const torch::Tensor& targets) override;
  MetricValues Compute() const override;
  void Reset() override;
  const torch::Tensor& confusion() const { return confusion_; }

 private:
  std::vector<std::string> class_names_;
  int64_t ignore_index_;
  torch::Tensor confusion_;  // int64 [K, K] on CPU
};

std::unique_ptr<MetricAccumulator> MakeMetrics(Task task, std::vector<std::string> class_names,
                                               int64_t ignore_index);

// Whether a larger value of `metric` is better ("loss" and "val_loss" are minimised).
bool HigherIsBetter(const std::string& metric);

}  // namespace selene::train
