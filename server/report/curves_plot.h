// curves.png: the learning curves of one run, loss on the left and the task's main metrics on
// the right, per epoch, train solid and validation dashed, with the best epoch marked.
#pragma once

#include <opencv2/core/types.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "server/train/task.h"

namespace selene::train {
struct EpochRecord;  // server/train/epoch_record.h (which pulls in torch)
}

namespace selene::report {

// Where WriteCurvesPng draws: the canvas (1400x520) and the two plot areas inside the axes.
struct CurvesLayout {
  cv::Size canvas;
  cv::Rect loss_plot;
  cv::Rect metrics_plot;
};
CurvesLayout GetCurvesLayout();

// Loss (train and val) on the left; on the right the main validation metrics of the task
// (classification: top1, top5, macro_f1; binary: dice, iou, pixel_accuracy; multi-class:
// mean_dice, mean_iou, pixel_accuracy) and their train counterparts when present in
// train_metrics. Epochs are shown 1-based; `best_epoch` is 0-based as in EpochRecord (-1: no
// marker). NaN values are skipped (the curve breaks there). InvalidArgument for an empty history.
Status WriteCurvesPng(const std::string& path, const std::vector<train::EpochRecord>& history,
                      train::Task task, int64_t best_epoch);

}  // namespace selene::report
