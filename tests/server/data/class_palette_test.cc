// classes.txt and class_dict.csv parsing, and exact-colour mapping of palette masks to ids.
#include "server/data/class_palette.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/server/data/data_test_util.h"

namespace selene::data {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ClassPaletteTest, ReadsClassDict) {
  testing::TempDir dir;
  testing::WriteBytes(dir / "class_dict.csv",
                      "name,r,g,b\nSky,128,128,128\n\"Road\", 128, 64, 128\n\nVoid,0,0,0\n");
  auto palette = ReadClassDict(dir / "class_dict.csv");
  ASSERT_TRUE(palette.ok()) << palette.status();
  EXPECT_THAT(palette->names, ElementsAre("Sky", "Road", "Void"));
  ASSERT_EQ(palette->colours.size(), 3u);
  EXPECT_EQ(palette->colours[1][0], 128);
  EXPECT_EQ(palette->colours[1][1], 64);
  EXPECT_EQ(palette->colours[1][2], 128);
}

TEST(ClassPaletteTest, RefusesBadClassDictsNamingLineAndValue) {
  testing::TempDir dir;
  struct Case {
    std::string text;
    std::string expect;
  };
  const Case cases[] = {
      {"label,red,green,blue\nSky,1,2,3\n", "line 1"},
      {"name,r,g,b\nSky,1,2,300\n", "\"300\""},
      {"name,r,g,b\nSky,1,2\n", "line 2"},
      {"name,r,g,b\nSky,1,2,3\nRoad,1,2,3\n", "line 3"},
      {"name,r,g,b\n", "no classes"},
  };
  for (const Case& c : cases) {
    testing::WriteBytes(dir / "class_dict.csv", c.text);
    auto palette = ReadClassDict(dir / "class_dict.csv");
    ASSERT_FALSE(palette.ok()) << c.text;
    EXPECT_EQ(palette.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(palette.status().message(),
                AllOf(HasSubstr("class_dict.csv"), HasSubstr(c.expect)));
  }
  auto missing = ReadClassDict(dir / "none.csv");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

TEST(ClassPaletteTest, ReadsClassNames) {
  testing::TempDir dir;
  testing::WriteBytes(dir / "classes.txt", "Sky\n  Building \n\nPole\n");
  auto names = ReadClassNames(dir / "classes.txt");
  ASSERT_TRUE(names.ok()) << names.status();
  EXPECT_THAT(*names, ElementsAre("Sky", "Building", "Pole"));
  testing::WriteBytes(dir / "twice.txt", "Sky\nSky\n");
  auto twice = ReadClassNames(dir / "twice.txt");
  ASSERT_FALSE(twice.ok());
  EXPECT_THAT(twice.status().message(), HasSubstr("line 2"));
}

TEST(ClassPaletteTest, MapsExactColoursAndCountsTheRest) {
  ClassPalette palette;
  palette.names = {"a", "b"};
  palette.colours = {{{255, 0, 0}}, {{0, 0, 255}}};  // RGB
  cv::Mat bgr(2, 3, CV_8UC3);
  bgr.at<cv::Vec3b>(0, 0) = {0, 0, 255};  // red -> 0
  bgr.at<cv::Vec3b>(0, 1) = {255, 0, 0};  // blue -> 1
  bgr.at<cv::Vec3b>(0, 2) = {0, 0, 254};  // almost red -> unmatched
  bgr.at<cv::Vec3b>(1, 0) = {0, 0, 254};  // again
  bgr.at<cv::Vec3b>(1, 1) = {255, 0, 0};
  bgr.at<cv::Vec3b>(1, 2) = {0, 255, 0};  // green -> unmatched
  int64_t unmatched = 5;                  // adds to what is there
  const cv::Mat ids = ColourMaskToIds(bgr, palette, -100, &unmatched);
  ASSERT_EQ(ids.type(), CV_32SC1);
  EXPECT_EQ(ids.at<int32_t>(0, 0), 0);
  EXPECT_EQ(ids.at<int32_t>(0, 1), 1);
  EXPECT_EQ(ids.at<int32_t>(0, 2), -100);
  EXPECT_EQ(ids.at<int32_t>(1, 0), -100);
  EXPECT_EQ(ids.at<int32_t>(1, 1), 1);
  EXPECT_EQ(ids.at<int32_t>(1, 2), -100);
  EXPECT_EQ(unmatched, 8);
}

}  // namespace
}  // namespace selene::data
