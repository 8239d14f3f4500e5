#include "server/data/image_decoding.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cstring>
#include <exception>
#include <fstream>
#include <system_error>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace selene::data {
namespace {

constexpr unsigned char kPngSignature[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

bool IsPng(const std::vector<uchar>& bytes) {
  return bytes.size() >= sizeof(kPngSignature) &&
         std::memcmp(bytes.data(), kPngSignature, sizeof(kPngSignature)) == 0;
}

bool IsJpeg(const std::vector<uchar>& bytes) {
  return bytes.size() >= 3 && bytes[0] == 0xff && bytes[1] == 0xd8 && bytes[2] == 0xff;
}

// Looks for `pattern` in the last `window` bytes: writers may pad after the final marker.
bool TailContains(const std::vector<uchar>& bytes, const std::vector<uchar>& pattern,
                  size_t window) {
  if (bytes.size() < pattern.size()) return false;
  const size_t start = bytes.size() > window ? bytes.size() - window : 0;
  auto begin = bytes.begin() + static_cast<std::ptrdiff_t>(start);
  return std::search(begin, bytes.end(), pattern.begin(), pattern.end()) != bytes.end();
}

}  // namespace

StatusOr<cv::Mat> DecodeImageFile(const std::string& path, int flags) {
  std::ifstream file(path, std::ios::binary | std::ios::ate);
  if (!file) return NotFoundError("cannot read: cannot open the file");
  const std::streamoff size = file.tellg();
  if (size < 0) return NotFoundError("cannot read: cannot tell its size");
  if (size == 0) return InvalidArgumentError("empty file (0 bytes)");
  std::vector<uchar> bytes(static_cast<size_t>(size));
  file.seekg(0);
  if (!file.read(reinterpret_cast<char*>(bytes.data()), size)) {
    return NotFoundError("cannot read: read failed");
  }
  // Decoders fill a truncated JPEG with grey and only warn, so truncation is checked first by
  // the format's end marker.
  const bool png = IsPng(bytes);
  const bool jpeg = IsJpeg(bytes);
  if (png && !TailContains(bytes, {'I', 'E', 'N', 'D'}, 64)) {
    return InvalidArgumentError("truncated (PNG ends before its IEND chunk)");
  }
  if (jpeg && !TailContains(bytes, {0xff, 0xd9}, 64)) {
    return InvalidArgumentError("truncated (JPEG has no end-of-image marker)");
  }
  cv::Mat image;
  try {
    image = cv::imdecode(bytes, flags);
  } catch (const cv::Exception& e) {
    return InvalidArgumentError(absl::StrCat("corrupt (", e.what(), ")"));
  }
  if (image.empty()) {
    if (png) return InvalidArgumentError("corrupt (PNG data does not decode)");
    if (jpeg) return InvalidArgumentError("corrupt (JPEG data does not decode)");
    return InvalidArgumentError("corrupt (not a recognised image format)");
  }
  return image;
}

StatusOr<cv::Mat> DecodeColourImage(const std::string& path) {
  return DecodeImageFile(path, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
}

void StoreImageChw(const cv::Mat& bgr, int64_t size, uint8_t* chw) {
  const int side = static_cast<int>(size);
  cv::Mat resized = bgr;
  if (bgr.cols != side || bgr.rows != side) {
    const bool shrinking = static_cast<int64_t>(bgr.cols) * bgr.rows > size * size;
    cv::resize(bgr, resized, cv::Size(side, side), 0, 0,
               shrinking ? cv::INTER_AREA : cv::INTER_LINEAR);
  }
  const size_t plane = static_cast<size_t>(size * size);
  // cv::split writes into these headers in place (same size and type): B, G, R -> planes 2, 1, 0.
  cv::Mat planes[3] = {cv::Mat(side, side, CV_8UC1, chw + 2 * plane),
                       cv::Mat(side, side, CV_8UC1, chw + plane),
                       cv::Mat(side, side, CV_8UC1, chw)};
  cv::split(resized, planes);
}

cv::Mat ResizeNearest(const cv::Mat& mask, int64_t size) {
  const int side = static_cast<int>(size);
  if (mask.cols == side && mask.rows == side) return mask;
  cv::Mat resized;
  cv::resize(mask, resized, cv::Size(side, side), 0, 0, cv::INTER_NEAREST);
  return resized;
}

std::string SizeText(const cv::Mat& image) { return absl::StrCat(image.cols, "x", image.rows); }

int DecodeThreadCount(int requested, int64_t items) {
  int64_t threads = requested > 0 ? requested : std::thread::hardware_concurrency();
  threads = std::min<int64_t>(threads, std::max<int64_t>(items, 1));
  return static_cast<int>(std::max<int64_t>(threads, 1));
}

namespace {

struct Progress {
  absl::Mutex mu;
  int64_t done ABSL_GUARDED_BY(mu) = 0;
  int finished_threads ABSL_GUARDED_BY(mu) = 0;
};

std::string DecodeOne(const std::function<std::string(int64_t)>& decode_one, int64_t i) {
  try {
    return decode_one(i);
  } catch (const std::exception& e) {
    return absl::StrCat("decoding failed: ", e.what());
  } catch (...) {
    return "decoding failed: unknown error";
  }
}

void Report(const std::function<void(int64_t, int64_t)>& on_progress, int64_t done, int64_t total) {
  if (!on_progress) return;
  // A throwing callback must not unwind past the joinable worker threads.
  try {
    on_progress(done, total);
  } catch (...) {
  }
}

}  // namespace

std::vector<std::string> DecodeInParallel(
    int64_t count, int threads, const std::function<std::string(int64_t)>& decode_one,
    const std::function<void(int64_t done, int64_t total)>& on_progress) {
  std::vector<std::string> reasons(static_cast<size_t>(std::max<int64_t>(count, 0)));
  if (count <= 0) {
    Report(on_progress, 0, 0);
    return reasons;
  }
  const int64_t step = std::max<int64_t>(1, (count + 49) / 50);
  const int workers = DecodeThreadCount(threads, count);
  // Process-wide setting: restored afterwards so other users of OpenCV keep theirs.
  const int opencv_threads = cv::getNumThreads();
  cv::setNumThreads(0);
  if (workers == 1) {
    int64_t next = step;
    for (int64_t i = 0; i < count; ++i) {
      reasons[i] = DecodeOne(decode_one, i);
      if (i + 1 >= next || i + 1 == count) {
        Report(on_progress, i + 1, count);
        next = i + 1 + step;
      }
    }
    cv::setNumThreads(opencv_threads);
    return reasons;
  }
  Progress progress;
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(workers));
  auto stride = [&](int t) {
    for (int64_t i = t; i < count; i += workers) {
      reasons[i] = DecodeOne(decode_one, i);
      absl::MutexLock lock(&progress.mu);
      ++progress.done;
    }
  };
  // A thread that cannot be started leaves its stride to the caller, after the others.
  int started = 0;
  try {
    for (; started < workers; ++started) {
      pool.emplace_back([&, started] {
        stride(started);
        absl::MutexLock lock(&progress.mu);
        ++progress.finished_threads;
      });
    }
  } catch (const std::system_error&) {
  }
  int64_t next = step;
  int64_t reported = 0;
  while (true) {
    int64_t done = 0;
    bool all_finished = false;
    {
      absl::MutexLock lock(&progress.mu);
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(progress.mu) {
        return progress.done >= next || progress.finished_threads == started;
      };
      progress.mu.Await(absl::Condition(&ready));
      done = progress.done;
      all_finished = progress.finished_threads == started;
    }
    if (all_finished) break;
    Report(on_progress, done, count);
    reported = done;
    next = done + step;
  }
  for (std::thread& thread : pool) thread.join();
  for (int t = started; t < workers; ++t) stride(t);
  cv::setNumThreads(opencv_threads);
  if (reported != count) Report(on_progress, count, count);
  return reasons;
}

}  // namespace selene::data
