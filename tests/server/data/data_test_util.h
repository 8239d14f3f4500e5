// Helpers shared by the server/data tests: a scratch folder per test (tests/testing/files.h),
// image and byte files written into it, and the location of the real samples (../shared/data).
#pragma once

#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "tests/testing/files.h"

namespace selene::data::testing {

// $SELENE_SHARED_DATA/<sub> when it exists, else "".
inline std::string SharedData(const std::string& sub) {
  const char* root = std::getenv("SELENE_SHARED_DATA");
  if (root == nullptr || *root == '\0') return "";
  const std::string path = std::string(root) + "/" + sub;
  return std::filesystem::is_directory(path) ? path : "";
}

#define SELENE_SKIP_WITHOUT_SAMPLE(var, sub)                                        \
  const std::string var = ::selene::data::testing::SharedData(sub);                 \
  if (var.empty()) {                                                                \
    GTEST_SKIP() << "real sample " << (sub)                                         \
                 << " not found: set SELENE_SHARED_DATA to the shared data folder"; \
  }

// A fresh folder removed (with its contents) at the end of the test; whole-file reads.
using ::selene::testing::ReadFile;
using ::selene::testing::TempDir;

inline void MakeParent(const std::string& path) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
}

inline void WriteBytes(const std::string& path, const std::string& bytes) {
  MakeParent(path);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Writes `image` in the format its extension names; fails the test when OpenCV cannot.
inline void WriteImage(const std::string& path, const cv::Mat& image) {
  MakeParent(path);
  ASSERT_TRUE(cv::imwrite(path, image)) << path;
}

// A BGR image whose pixels depend on (seed, y, x), so every file differs.
inline cv::Mat PatternImage(int width, int height, int seed) {
  cv::Mat image(height, width, CV_8UC3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      image.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<uint8_t>(x * 7 + seed * 31),
                                            static_cast<uint8_t>(y * 5 + seed * 17),
                                            static_cast<uint8_t>((x + y) * 3 + seed));
    }
  }
  return image;
}

inline std::string RandomBytes(size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string bytes(count, '\0');
  for (char& c : bytes) c = static_cast<char>(rng() & 0xff);
  return bytes;
}

// The first half of a valid encoded image (a truncated download).
inline std::string HalfOf(const cv::Mat& image, const std::string& ext) {
  std::vector<uchar> encoded;
  cv::imencode(ext, image, encoded);
  return std::string(encoded.begin(), encoded.begin() + encoded.size() / 2);
}

}  // namespace selene::data::testing
