#include "server/report/main_metrics.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace selene::report {

std::vector<std::string> MainMetrics(train::Task task) {
  switch (task) {
    case train::Task::kClassification:
      return {"top1", "top5", "macro_f1"};
    case train::Task::kBinarySegmentation:
      return {"dice", "iou", "pixel_accuracy"};
    case train::Task::kMultiClassSegmentation:
      return {"mean_dice", "mean_iou", "pixel_accuracy"};
  }
  return {};
}

std::string TaskTitle(train::Task task) {
  switch (task) {
    case train::Task::kClassification:
      return "Classification";
    case train::Task::kBinarySegmentation:
      return "Binary segmentation";
    case train::Task::kMultiClassSegmentation:
      return "Multi-class segmentation";
  }
  return "Unknown task";
}

std::string MetricLabel(const std::string& metric) {
  static const std::map<std::string, std::string>* const kLabels =
      new std::map<std::string, std::string>{
          {"top1", "top-1"},
          {"top5", "top-5"},
          {"macro_f1", "macro F1"},
          {"dice", "Dice"},
          {"iou", "IoU"},
          {"pixel_accuracy", "pixel accuracy"},
          {"mean_dice", "mean Dice"},
          {"mean_iou", "mean IoU"},
          {"val_loss", "val loss"},
          {"train_loss", "train loss"},
          {"precision", "precision"},
          {"recall", "recall"},
          {"f1", "F1"},
      };
  const size_t slash = metric.find('/');
  if (slash != std::string::npos) {
    return absl::StrCat(MetricLabel(metric.substr(0, slash)), " (", metric.substr(slash + 1), ")");
  }
  auto it = kLabels->find(metric);
  if (it != kLabels->end()) return it->second;
  return absl::StrReplaceAll(metric, {{"_", " "}});
}

}  // namespace selene::report
