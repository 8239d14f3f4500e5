// Class names and colour palettes that segmentation folders carry beside their masks:
// classes.txt (one name per line, line i = id i) and class_dict.csv (header "name,r,g,b", row
// i = id i), and the exact-colour mapping from palette masks to class ids.
#pragma once

#include <opencv2/core.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace selene::data {

struct ClassPalette {
  std::vector<std::string> names;
  std::vector<std::array<uint8_t, 3>> colours;  // RGB, one per class
};

// Non-empty lines, trimmed. NotFound naming the file when it cannot be read; InvalidArgument when
// it holds no names or a name twice.
StatusOr<std::vector<std::string>> ReadClassNames(const std::string& path);

// InvalidArgument naming the file, line and value for a bad header, a missing column, a channel
// outside 0..255 or a colour used twice.
StatusOr<ClassPalette> ReadClassDict(const std::string& path);

// CV_32SC1 ids: a pixel whose RGB equals a palette colour gets that row's id, any other colour
// gets `unmatched_id`; their count is added to *unmatched. `bgr`: CV_8UC3 (or CV_8UC4, alpha
// ignored).
cv::Mat ColourMaskToIds(const cv::Mat& bgr, const ClassPalette& palette, int32_t unmatched_id,
                        int64_t* unmatched);

}  // namespace selene::data
