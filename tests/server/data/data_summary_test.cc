// FormatDataSummary (aligned, truncated lists) and DataSummaryToJson (exact text, escapes).
#include "server/data/data_summary.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>

namespace selene::data {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

DataSummary Small() {
  DataSummary s;
  s.dataset = "moon";
  s.task = "binary_segmentation";
  s.root = "/data/moon";
  s.split = "fraction 0.2, seed 1 (by item name)";
  s.storage_size = 256;
  s.images_found = 3;
  s.masks_found = 2;
  s.train_items = 1;
  s.val_items = 1;
  s.unpaired = {"images/render/render0003.png: no mask for frame 3"};
  s.unreadable = {"a \"b\"\n\t\\c\x01"};
  s.image_sizes = {{"720x480", 2}};
  s.class_names = {"rock"};
  s.pixels_per_class = {131000, 72};
  s.empty_masks = 1;
  s.empty_mask_examples = {"images/ground/ground0002.png"};
  s.seconds = 0.25;
  return s;
}

TEST(DataSummaryToJsonTest, ExactTextWithEscapes) {
  const std::string expected =
      "{\"dataset\":\"moon\",\"task\":\"binary_segmentation\",\"root\":\"/data/moon\","
      "\"split\":\"fraction 0.2, seed 1 (by item name)\",\"storage_size\":256,"
      "\"images_found\":3,\"masks_found\":2,\"train_items\":1,\"val_items\":1,"
      "\"unpaired\":[\"images/render/render0003.png: no mask for frame 3\"],"
      "\"unreadable\":[\"a \\\"b\\\"\\n\\t\\\\c\\u0001\"],\"warnings\":[],"
      "\"image_sizes\":{\"720x480\":2},\"class_names\":[\"rock\"],\"images_per_class\":[],"
      "\"pixels_per_class\":[131000,72],\"ignored_pixels\":0,\"unmatched_colour_pixels\":0,"
      "\"empty_masks\":1,\"empty_mask_examples\":[\"images/ground/ground0002.png\"],"
      "\"cache_hit\":false,\"seconds\":0.250}";
  EXPECT_EQ(DataSummaryToJson(Small()), expected);
}

TEST(DataSummaryToJsonTest, InvalidUtf8BecomesReplacementCharacter) {
  DataSummary s;
  s.warnings = {"caf\xc3\xa9", "bad\xff", "cut\xe2\x82"};
  const std::string json = DataSummaryToJson(s);
  EXPECT_THAT(json, HasSubstr("[\"caf\xc3\xa9\",\"bad\\ufffd\",\"cut\\ufffd\\ufffd\"]"));
}

TEST(FormatDataSummaryTest, NamesEverythingAndLabelsBinaryPixels) {
  const std::string text = FormatDataSummary(Small());
  EXPECT_THAT(text, HasSubstr("Data set moon (binary_segmentation) at /data/moon"));
  EXPECT_THAT(text, HasSubstr("1 train, 1 val"));
  EXPECT_THAT(text, HasSubstr("720x480 x2"));
  EXPECT_THAT(text, HasSubstr("background"));
  EXPECT_THAT(text, HasSubstr("rock"));
  EXPECT_THAT(text, HasSubstr("131,000"));
  EXPECT_THAT(text, HasSubstr("0.05%"));  // 72 of 131072 pixels
  EXPECT_THAT(text, HasSubstr("render0003.png: no mask for frame 3"));
  EXPECT_THAT(text, HasSubstr("ground0002.png"));
}

TEST(FormatDataSummaryTest, TruncatesLongListsAndStaysShort) {
  DataSummary s = Small();
  s.unreadable.clear();
  for (int i = 0; i < 40; ++i) s.unreadable.push_back("bad" + std::to_string(i) + ".png: corrupt");
  s.task = "classification";
  s.pixels_per_class.clear();
  s.class_names.clear();
  for (int i = 0; i < 200; ++i) {
    s.class_names.push_back("class" + std::to_string(i));
    s.images_per_class.push_back(550);
  }
  const std::string text = FormatDataSummary(s);
  EXPECT_THAT(text, HasSubstr("Unreadable (40):"));
  EXPECT_THAT(text, HasSubstr("bad0.png: corrupt"));
  EXPECT_THAT(text, HasSubstr("bad7.png: corrupt"));
  EXPECT_THAT(text, Not(HasSubstr("bad8.png")));
  EXPECT_THAT(text, HasSubstr("... and 32 more"));
  EXPECT_THAT(text, HasSubstr("... and 184 more"));
  EXPECT_THAT(text, HasSubstr("200 classes, 110,000 total"));
  EXPECT_LE(std::count(text.begin(), text.end(), '\n'), 60);
}

}  // namespace
}  // namespace selene::data
