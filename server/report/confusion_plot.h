// confusion.png: where a classifier's mistakes go, as a row-normalised heat map (rows = true
// class, columns = predicted class).
#pragma once

#include <ATen/core/Tensor.h>
#include <opencv2/core/types.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace selene::report {

// Each cell is the share of the row's (true class's) samples predicted as the column's class,
// white (0) to dark blue (1), with a colour bar. Class names on both axes (truncated; left out
// above 60 classes, where the axes show class indices); the percentage in each cell when
// K <= 20 (and the count when cells are large). `confusion`: integer counts [K, K];
// `class_names`: K names or empty (indices). InvalidArgument names a bad shape or name count.
Status WriteConfusionPng(const std::string& path, const at::Tensor& confusion,
                         const std::vector<std::string>& class_names);

// Where WriteConfusionPng draws the cell (true class `row`, predicted class `col`) of a K-class
// matrix, for callers that annotate the image and for tests.
cv::Rect ConfusionCellRect(int64_t num_classes, int64_t row, int64_t col);

}  // namespace selene::report
