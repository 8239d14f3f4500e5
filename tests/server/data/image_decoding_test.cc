// Decoding files with reasons for the bad ones, CHW storage in RGB order, and the thread pool:
// every item once, in its own slot, progress on the caller's thread, failures contained.
#include "server/data/image_decoding.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "tests/server/data/data_test_util.h"

namespace selene::data {
namespace {

using ::testing::HasSubstr;

TEST(DecodeImageFileTest, GivesReasonsForBadFiles) {
  testing::TempDir dir;
  const cv::Mat image = testing::PatternImage(40, 30, 1);
  testing::WriteImage(dir / "good.png", image);
  testing::WriteImage(dir / "good.jpg", image);
  testing::WriteBytes(dir / "empty.png", "");
  testing::WriteBytes(dir / "random.png", testing::RandomBytes(3000, 7));
  testing::WriteBytes(dir / "half.png", testing::HalfOf(image, ".png"));
  testing::WriteBytes(dir / "half.jpg", testing::HalfOf(image, ".jpg"));
  // A valid PNG frame around garbage: signature and IEND present, data undecodable.
  std::string fake = testing::HalfOf(image, ".png").substr(0, 8) + testing::RandomBytes(500, 3) +
                     std::string("\0\0\0\0IEND\xae\x42\x60\x82", 12);
  testing::WriteBytes(dir / "fake.png", fake);

  auto good = DecodeColourImage(dir / "good.png");
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(cv::norm(*good, image, cv::NORM_INF), 0);
  EXPECT_TRUE(DecodeColourImage(dir / "good.jpg").ok());

  const std::pair<const char*, const char*> cases[] = {
      {"empty.png", "empty file (0 bytes)"},
      {"random.png", "corrupt (not a recognised image format)"},
      {"half.png", "truncated (PNG"},
      {"half.jpg", "truncated (JPEG"},
      {"fake.png", "corrupt (PNG"},
      {"missing.png", "cannot read"},
  };
  for (const auto& [name, reason] : cases) {
    auto decoded = DecodeColourImage(dir / name);
    ASSERT_FALSE(decoded.ok()) << name;
    EXPECT_THAT(decoded.status().message(), HasSubstr(reason)) << name;
  }
}

TEST(StoreImageChwTest, WritesRgbPlanes) {
  cv::Mat bgr(2, 2, CV_8UC3, cv::Scalar(10, 20, 30));  // B=10, G=20, R=30
  bgr.at<cv::Vec3b>(1, 0) = {1, 2, 3};
  std::vector<uint8_t> chw(3 * 4);
  StoreImageChw(bgr, 2, chw.data());
  EXPECT_EQ(chw, (std::vector<uint8_t>{30, 30, 3, 30, 20, 20, 2, 20, 10, 10, 1, 10}));
}

TEST(StoreImageChwTest, ResizesToTheStorageSide) {
  const cv::Mat big(60, 90, CV_8UC3, cv::Scalar(5, 6, 7));
  std::vector<uint8_t> chw(3 * 16 * 16);
  StoreImageChw(big, 16, chw.data());
  EXPECT_EQ(chw.front(), 7);
  EXPECT_EQ(chw.back(), 5);
  const cv::Mat small(4, 4, CV_8UC3, cv::Scalar(50, 60, 70));
  StoreImageChw(small, 16, chw.data());
  EXPECT_EQ(chw[16 * 16 + 100], 60);
}

TEST(DecodeInParallelTest, EveryItemOnceWithProgressOnTheCaller) {
  for (int threads : {1, 2, 3}) {
    SCOPED_TRACE(threads);
    const int64_t n = 1000;
    std::vector<std::atomic<int>> visits(n);
    std::vector<std::pair<int64_t, int64_t>> reports;
    const std::thread::id caller = std::this_thread::get_id();
    bool reported_elsewhere = false;
    const auto reasons = DecodeInParallel(
        n, threads,
        [&](int64_t i) -> std::string {
          visits[i].fetch_add(1);
          // Slow enough that the caller sees progress before the end.
          std::this_thread::sleep_for(std::chrono::microseconds(100));
          if (i % 100 == 7) return "bad " + std::to_string(i);
          if (i == 500) throw std::runtime_error("boom");
          return "";
        },
        [&](int64_t done, int64_t total) {
          reported_elsewhere |= std::this_thread::get_id() != caller;
          reports.emplace_back(done, total);
        });
    ASSERT_EQ(reasons.size(), static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(visits[i].load(), 1) << i;
      if (i % 100 == 7) {
        EXPECT_EQ(reasons[i], "bad " + std::to_string(i));
      } else if (i == 500) {
        EXPECT_THAT(reasons[i], HasSubstr("boom"));
      } else {
        EXPECT_EQ(reasons[i], "");
      }
    }
    EXPECT_FALSE(reported_elsewhere);
    ASSERT_FALSE(reports.empty());
    EXPECT_EQ(reports.back(), std::make_pair(n, n));
    for (size_t k = 1; k < reports.size(); ++k) EXPECT_LE(reports[k - 1].first, reports[k].first);
    // Every ~2%: about 50 reports, not one per item.
    EXPECT_GE(reports.size(), 2u);
    EXPECT_LE(reports.size(), 52u);
  }
}

TEST(DecodeInParallelTest, ThrowingProgressCallbackIsContained) {
  const auto reasons = DecodeInParallel(
      100, 2, [](int64_t) { return std::string(); },
      [](int64_t, int64_t) { throw std::runtime_error("callback"); });
  EXPECT_EQ(reasons.size(), 100u);
}

TEST(DecodeThreadCountTest, Bounds) {
  EXPECT_EQ(DecodeThreadCount(4, 2), 2);
  EXPECT_EQ(DecodeThreadCount(1, 100), 1);
  EXPECT_GE(DecodeThreadCount(0, 100), 1);
  EXPECT_EQ(DecodeThreadCount(3, 0), 1);
}

}  // namespace
}  // namespace selene::data
