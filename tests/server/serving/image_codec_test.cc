// Tests server/serving/image_codec.h: decoding request images into the pixels a model takes
// (formats, grey, 16-bit, alpha), refusals with their messages, and mask PNG encoding.
#include "server/serving/image_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <string>
#include <vector>

#include "tests/server/serving/serving_test_models.h"

namespace selene::serving {
namespace {

using testing::EncodeJpeg;
using testing::EncodePng;
using ::testing::HasSubstr;
using testing::TestImage;

constexpr int64_t kNoLimit = int64_t{1} << 40;

std::string Encode(const std::string& ext, const cv::Mat& image) {
  std::vector<uchar> bytes;
  EXPECT_TRUE(cv::imencode(ext, image, bytes));
  return std::string(bytes.begin(), bytes.end());
}

int64_t CountDifferent(const cv::Mat& a, const cv::Mat& b) {
  cv::Mat diff;
  cv::absdiff(a, b, diff);
  return cv::countNonZero(diff.reshape(1));
}

TEST(DecodeImageTest, PngRoundTripGivesRgbPixelsExactly) {
  const cv::Mat bgr = TestImage(40, 30, 3, 1);
  StatusOr<cv::Mat> decoded = DecodeImage(EncodePng(bgr), 3, kNoLimit);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_EQ(decoded->type(), CV_8UC3);
  ASSERT_EQ(decoded->size(), cv::Size(40, 30));
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  EXPECT_EQ(CountDifferent(*decoded, rgb), 0);
}

TEST(DecodeImageTest, JpegDecodesCloseToTheOriginal) {
  cv::Mat bgr;  // smoothed: JPEG is lossy on the test image's pixel noise
  cv::GaussianBlur(TestImage(64, 48, 3, 2), bgr, cv::Size(7, 7), 2.0);
  StatusOr<cv::Mat> decoded = DecodeImage(EncodeJpeg(bgr), 3, kNoLimit);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_EQ(decoded->size(), cv::Size(64, 48));
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  EXPECT_LT(cv::norm(*decoded, rgb, cv::NORM_L1) / rgb.total() / 3, 4.0);
}

TEST(DecodeImageTest, GreyIsExpandedAndColourIsReducedToTheModelsChannels) {
  const cv::Mat grey = TestImage(20, 10, 1, 3);
  StatusOr<cv::Mat> expanded = DecodeImage(EncodePng(grey), 3, kNoLimit);
  ASSERT_TRUE(expanded.ok()) << expanded.status();
  ASSERT_EQ(expanded->type(), CV_8UC3);
  std::vector<cv::Mat> channels;
  cv::split(*expanded, channels);
  for (const cv::Mat& c : channels) EXPECT_EQ(CountDifferent(c, grey), 0);

  const cv::Mat bgr = TestImage(20, 10, 3, 4);
  StatusOr<cv::Mat> reduced = DecodeImage(EncodePng(bgr), 1, kNoLimit);
  ASSERT_TRUE(reduced.ok()) << reduced.status();
  ASSERT_EQ(reduced->type(), CV_8UC1);
  cv::Mat expected;
  cv::cvtColor(bgr, expected, cv::COLOR_BGR2GRAY);
  EXPECT_EQ(CountDifferent(*reduced, expected), 0);
}

TEST(DecodeImageTest, SixteenBitIsScaledAndAlphaIsDropped) {
  cv::Mat deep(4, 6, CV_16UC3, cv::Scalar(0, 257 * 100, 65535));  // BGR
  StatusOr<cv::Mat> decoded = DecodeImage(EncodePng(deep), 3, kNoLimit);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->at<cv::Vec3b>(2, 3), cv::Vec3b(255, 100, 0));  // RGB

  cv::Mat bgra(5, 5, CV_8UC4, cv::Scalar(10, 20, 30, 0));  // fully transparent
  StatusOr<cv::Mat> opaque = DecodeImage(EncodePng(bgra), 3, kNoLimit);
  ASSERT_TRUE(opaque.ok()) << opaque.status();
  EXPECT_EQ(opaque->at<cv::Vec3b>(1, 1), cv::Vec3b(30, 20, 10));
}

TEST(DecodeImageTest, RefusesEmptyAndUndecodableBytesNamingThem) {
  StatusOr<cv::Mat> empty = DecodeImage("", 3, kNoLimit);
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(empty.status().message(), HasSubstr("empty (0 bytes)"));

  StatusOr<cv::Mat> text = DecodeImage("hello world", 3, kNoLimit);
  EXPECT_EQ(text.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(text.status().message(), HasSubstr("cannot decode 11 bytes"));

  const std::string png = EncodePng(TestImage(50, 50, 3, 5));
  const std::string half = png.substr(0, png.size() / 2);
  StatusOr<cv::Mat> truncated = DecodeImage(half, 3, kNoLimit);
  EXPECT_EQ(truncated.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(truncated.status().message(),
              HasSubstr("cannot decode " + std::to_string(half.size()) + " bytes (PNG"));
}

TEST(DecodeImageTest, RefusesTooManyPixelsNamingTheSizeAndTheLimit) {
  const cv::Mat image = TestImage(200, 100, 3, 6);
  for (const char* ext : {".png", ".jpg", ".bmp", ".ppm"}) {
    SCOPED_TRACE(ext);
    StatusOr<cv::Mat> refused = DecodeImage(Encode(ext, image), 3, 19999);
    EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(refused.status().message(), HasSubstr("200x100"));
    EXPECT_THAT(refused.status().message(), HasSubstr("limit of 19999"));
    EXPECT_TRUE(DecodeImage(Encode(ext, image), 3, 20000).ok());
  }
}

TEST(PeekImageSizeTest, ReadsPngJpegAndBmpHeadersWithoutDecoding) {
  const cv::Mat image = TestImage(123, 45, 3, 7);
  for (const char* ext : {".png", ".jpg", ".bmp"}) {
    SCOPED_TRACE(ext);
    const ImageHeaderSize size = PeekImageSize(Encode(ext, image));
    EXPECT_EQ(size.width, 123);
    EXPECT_EQ(size.height, 45);
  }
  EXPECT_EQ(PeekImageSize(Encode(".ppm", image)).width, 0);  // not peeked: checked after decoding
  EXPECT_EQ(PeekImageSize("\x89PNG").width, 0);
}

TEST(EncodeMaskPngTest, RoundTripsAndRefusesOtherTypes) {
  cv::Mat mask(7, 9, CV_8UC1, cv::Scalar(0));
  mask(cv::Rect(2, 1, 4, 3)).setTo(255);
  StatusOr<std::string> png = EncodeMaskPng(mask);
  ASSERT_TRUE(png.ok()) << png.status();
  const cv::Mat back = testing::DecodeGreyPng(*png);
  ASSERT_EQ(back.type(), CV_8UC1);
  EXPECT_EQ(CountDifferent(back, mask), 0);

  EXPECT_FALSE(EncodeMaskPng(cv::Mat(3, 3, CV_32FC1)).ok());
  EXPECT_FALSE(EncodeMaskPng(cv::Mat()).ok());
}

}  // namespace
}  // namespace selene::serving
