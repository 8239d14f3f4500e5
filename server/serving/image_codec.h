// Image bytes in and out of the inference path: decoding a request's encoded image (PNG, JPEG,
// BMP, TIFF, WebP, ... whatever OpenCV reads) into 8-bit pixels with the channels a model takes,
// refusing oversized images before they are decoded where the header tells the size, and
// encoding 8-bit masks as PNG for the reply. OpenCV only: no torch here.
#pragma once

#include <opencv2/core.hpp>

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "common/status.h"

namespace selene::serving {

// Width and height an image's header declares, read without decoding (PNG, JPEG, BMP), so an
// oversized image is refused before its pixels are allocated. {0, 0} for other formats and
// unreadable headers (those are checked after decoding).
struct ImageHeaderSize {
  int64_t width = 0;
  int64_t height = 0;
};
ImageHeaderSize PeekImageSize(absl::string_view bytes);

// Decodes `bytes` into CV_8UC1 (channels 1: luma) or CV_8UC3 in RGB order (channels 3: the order
// the training pipeline stores), whatever the file holds: grey is expanded, alpha dropped (as
// the training readers drop it), 16-bit scaled to 8-bit, float images taken as [0, 1]. EXIF
// orientation is ignored, as in training, so masks align with the stored pixels.
// InvalidArgument: empty or undecodable bytes ("image: cannot decode 123 bytes (not PNG, JPEG,
// BMP, TIFF or WebP, or corrupt)"), more than `max_pixels` pixels ("image: 5000x4000 is 20000000
// pixels, over the limit of 16777216"), an unsupported pixel depth or channel count.
StatusOr<cv::Mat> DecodeImage(absl::string_view bytes, int channels, int64_t max_pixels);

// An 8-bit single-channel image as PNG bytes (fast compression: masks are flat and small anyway).
StatusOr<std::string> EncodeMaskPng(const cv::Mat& mask);

}  // namespace selene::serving
