// Binary vs colour-coded mask detection and conversion: the real lunar ground truth, clean
// binary masks (0/255, 0/1, one or three channels), noisy JPEG masks, and label id images.
#include "server/data/mask_encoding.h"

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "tests/server/data/data_test_util.h"

namespace selene::data {
namespace {

TEST(MaskEncodingTest, LunarColourMaskBecomesRareRocks) {
  SELENE_SKIP_WITHOUT_SAMPLE(lunar, "lunar-sample");
  const cv::Mat ground = cv::imread(lunar + "/images/ground/ground0001.png", cv::IMREAD_UNCHANGED);
  ASSERT_FALSE(ground.empty());
  ASSERT_EQ(ground.channels(), 3);
  EXPECT_EQ(DetectMaskEncoding(ground), MaskEncoding::kColourCoded);
  MaskEncoding encoding = MaskEncoding::kBinary;
  auto rocks = DecodeBinaryMask(ground, &encoding);
  ASSERT_TRUE(rocks.ok()) << rocks.status();
  EXPECT_EQ(encoding, MaskEncoding::kColourCoded);
  ASSERT_EQ(rocks->type(), CV_8UC1);
  ASSERT_EQ(rocks->size(), ground.size());
  double lo = 0, hi = 0;
  cv::minMaxLoc(*rocks, &lo, &hi);
  EXPECT_EQ(lo, 0);
  EXPECT_EQ(hi, 1);
  // The data set's README: rocks are 1.1% of ground0001.png's pixels.
  const double fraction = cv::countNonZero(*rocks) / static_cast<double>(ground.total());
  EXPECT_GT(fraction, 0.007);
  EXPECT_LT(fraction, 0.016);
  // Sky (27%, red) must not count: a red-dominant pixel is never a rock.
  int red_rocks = 0;
  for (int y = 0; y < ground.rows; ++y) {
    for (int x = 0; x < ground.cols; ++x) {
      const cv::Vec3b p = ground.at<cv::Vec3b>(y, x);
      if (p[2] > std::max(p[0], p[1]) && rocks->at<uint8_t>(y, x)) ++red_rocks;
    }
  }
  EXPECT_EQ(red_rocks, 0);
}

// A 40x30 mask with a 10x6 block of foreground at (5, 4).
cv::Mat Block(int type, double on) {
  cv::Mat mask = cv::Mat::zeros(30, 40, type);
  mask(cv::Rect(5, 4, 10, 6)).setTo(cv::Scalar::all(on));
  return mask;
}

void ExpectBlock(const cv::Mat& bits) {
  ASSERT_EQ(bits.type(), CV_8UC1);
  EXPECT_EQ(cv::countNonZero(bits), 60);
  EXPECT_EQ(bits.at<uint8_t>(4, 5), 1);
  EXPECT_EQ(bits.at<uint8_t>(9, 14), 1);
  EXPECT_EQ(bits.at<uint8_t>(10, 14), 0);
  EXPECT_EQ(bits.at<uint8_t>(0, 0), 0);
}

TEST(MaskEncodingTest, CleanBinaryMasksAreDetectedAsBinary) {
  for (int type : {CV_8UC1, CV_8UC3, CV_16UC1}) {
    for (double on : {1.0, 255.0}) {
      SCOPED_TRACE(::testing::Message() << "type " << type << " on " << on);
      const cv::Mat mask = Block(type, on);
      EXPECT_EQ(DetectMaskEncoding(mask), MaskEncoding::kBinary);
      MaskEncoding encoding = MaskEncoding::kColourCoded;
      auto bits = DecodeBinaryMask(mask, &encoding);
      ASSERT_TRUE(bits.ok()) << bits.status();
      EXPECT_EQ(encoding, MaskEncoding::kBinary);
      ExpectBlock(*bits);
    }
  }
}

TEST(MaskEncodingTest, BinaryMasksWrittenAsFilesAreDetected) {
  testing::TempDir dir;
  const cv::Mat zero_255 = Block(CV_8UC1, 255);
  const cv::Mat zero_one = Block(CV_8UC1, 1);
  testing::WriteImage(dir / "a.png", zero_255);
  testing::WriteImage(dir / "b.png", zero_one);
  cv::Mat rgb;
  cv::merge(std::vector<cv::Mat>{zero_255, zero_255, zero_255}, rgb);
  testing::WriteImage(dir / "c.png", rgb);
  // JPEG smears the edges into grey values: still binary, thresholded at 127.
  testing::WriteImage(dir / "d.jpg", rgb);
  for (const char* name : {"a.png", "b.png", "c.png", "d.jpg"}) {
    SCOPED_TRACE(name);
    const cv::Mat mask = cv::imread(dir / name, cv::IMREAD_UNCHANGED);
    ASSERT_FALSE(mask.empty());
    MaskEncoding encoding = MaskEncoding::kColourCoded;
    auto bits = DecodeBinaryMask(mask, &encoding);
    ASSERT_TRUE(bits.ok()) << bits.status();
    EXPECT_EQ(encoding, MaskEncoding::kBinary);
    if (std::string(name) != "d.jpg") {
      ExpectBlock(*bits);
    } else {
      EXPECT_NEAR(cv::countNonZero(*bits), 60, 12);
      EXPECT_EQ(bits->at<uint8_t>(6, 9), 1);
    }
  }
}

TEST(MaskEncodingTest, ColourCodedRulesOnNoisyColours) {
  // BGR pixels: sky (red), small rock (green), large rock (blue), ground (black), and noisy or
  // dim versions of each.
  struct Case {
    cv::Vec3b bgr;
    uint8_t rock;
  };
  const Case cases[] = {
      {{0, 0, 255}, 0}, {{10, 20, 240}, 0}, {{0, 255, 0}, 1},   {{30, 200, 40}, 1},
      {{255, 0, 0}, 1}, {{220, 15, 25}, 1}, {{0, 0, 0}, 0},     {{12, 9, 14}, 0},
      {{0, 120, 0}, 0}, {{110, 0, 0}, 0},   {{0, 200, 200}, 1}, {{40, 130, 100}, 1},
  };
  cv::Mat mask(1, static_cast<int>(std::size(cases)), CV_8UC3);
  for (size_t i = 0; i < std::size(cases); ++i)
    mask.at<cv::Vec3b>(0, static_cast<int>(i)) = cases[i].bgr;
  ASSERT_EQ(DetectMaskEncoding(mask), MaskEncoding::kColourCoded);
  const cv::Mat bits = MaskToBinary(mask, MaskEncoding::kColourCoded);
  for (size_t i = 0; i < std::size(cases); ++i) {
    EXPECT_EQ(bits.at<uint8_t>(0, static_cast<int>(i)), cases[i].rock)
        << "pixel " << i << " " << cases[i].bgr;
  }
}

TEST(MaskEncodingTest, NonzeroAndLabelIds) {
  cv::Mat colour = cv::Mat::zeros(2, 3, CV_8UC3);
  colour.at<cv::Vec3b>(0, 1) = {0, 0, 1};
  colour.at<cv::Vec3b>(1, 2) = {7, 0, 0};
  auto nonzero = NonzeroMask(colour);
  ASSERT_TRUE(nonzero.ok());
  EXPECT_EQ(cv::countNonZero(*nonzero), 2);
  EXPECT_EQ(nonzero->at<uint8_t>(0, 1), 1);

  auto refused = LabelIds(colour);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("class_dict.csv"), std::string::npos);

  cv::Mat grey = (cv::Mat_<uint8_t>(1, 4) << 0, 3, 11, 255);
  cv::Mat grey3;
  cv::merge(std::vector<cv::Mat>{grey, grey, grey}, grey3);
  for (const cv::Mat& labels : {grey, grey3}) {
    auto ids = LabelIds(labels);
    ASSERT_TRUE(ids.ok()) << ids.status();
    ASSERT_EQ(ids->type(), CV_32SC1);
    EXPECT_EQ(ids->at<int32_t>(0, 2), 11);
    EXPECT_EQ(ids->at<int32_t>(0, 3), 255);
  }
  auto float_mask = LabelIds(cv::Mat::zeros(2, 2, CV_32FC1));
  ASSERT_FALSE(float_mask.ok());
  EXPECT_NE(float_mask.status().message().find("depth"), std::string::npos);
}

}  // namespace
}  // namespace selene::data
