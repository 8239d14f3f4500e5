// The few metrics that summarise a task (plotted, tabulated, shown in progress lines), and
// the names people read for metric keys ("top1" -> "top-1", "iou" -> "IoU") and tasks.
#pragma once

#include <string>
#include <vector>

#include "server/train/task.h"

namespace selene::report {

// Classification: top1, top5, macro_f1; binary segmentation: dice, iou, pixel_accuracy;
// multi-class segmentation: mean_dice, mean_iou, pixel_accuracy. The first is the headline.
std::vector<std::string> MainMetrics(train::Task task);

// Display name of a metric key: "top1" -> "top-1", "macro_f1" -> "macro F1", "mean_iou" ->
// "mean IoU", "val_loss" -> "val loss", "dice/road" -> "Dice (road)". Unknown keys come back
// with underscores as spaces.
std::string MetricLabel(const std::string& metric);

// "Classification", "Binary segmentation", "Multi-class segmentation".
std::string TaskTitle(train::Task task);

}  // namespace selene::report
