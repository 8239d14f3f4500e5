// Decoding image files with OpenCV into preallocated uint8 storage, and the small thread pool
// that decodes a whole file list: thread t of T takes items t, t+T, ..., so each item always
// lands in the same slot and the result does not depend on the thread count.
#pragma once

#include <opencv2/core.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"

namespace selene::data {

// Reads and decodes one file with cv::imdecode `flags`. On failure the status message is the
// reason alone (the caller names the file): "empty file (0 bytes)", "truncated (PNG ends before
// its IEND chunk)", "truncated (JPEG has no end-of-image marker)", "corrupt (PNG data does not
// decode)", "corrupt (not a recognised image format)", "cannot read: ...".
StatusOr<cv::Mat> DecodeImageFile(const std::string& path, int flags);

// Reads an image as 3-channel BGR (grey expanded, alpha dropped, EXIF orientation ignored so
// images and their masks stay aligned).
StatusOr<cv::Mat> DecodeColourImage(const std::string& path);

// Resizes to size x size (INTER_AREA when the image has more pixels than the target, else
// INTER_LINEAR) and writes the RGB planes to `chw` (3 * size * size bytes). `bgr`: CV_8UC3.
void StoreImageChw(const cv::Mat& bgr, int64_t size, uint8_t* chw);

// Resizes a single-channel label or mask image to size x size with INTER_NEAREST.
cv::Mat ResizeNearest(const cv::Mat& mask, int64_t size);

// "720x480".
std::string SizeText(const cv::Mat& image);

// Hardware threads when `requested` <= 0, never more than `items` (and at least 1).
int DecodeThreadCount(int requested, int64_t items);

// Calls decode_one(i) for every i in [0, count) on DecodeThreadCount(threads, count) threads
// (the caller's own thread when that is 1) and returns each item's failure reason ("" = decoded).
// An exception from decode_one becomes that item's reason. on_progress(done, total), when set,
// runs on the calling thread every ~2% of the items and once at the end. OpenCV's own thread
// pool is switched off meanwhile so it does not compete with these threads.
std::vector<std::string> DecodeInParallel(
    int64_t count, int threads, const std::function<std::string(int64_t)>& decode_one,
    const std::function<void(int64_t done, int64_t total)>& on_progress);

}  // namespace selene::data
