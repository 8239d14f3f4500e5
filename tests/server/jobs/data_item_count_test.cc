// Tests server/jobs/data_item_count.h on folder layouts made in a temporary folder: MOON's render
// folders (with and without train/ and val/), segmentation folders' image folders, hidden files
// and masks left out, and the kinds it does not count.
#include "server/jobs/data_item_count.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/testing/files.h"

namespace selene::jobs {
namespace {

namespace fs = std::filesystem;

class DataItemCountTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = temp_.path(); }

  // `count` empty files named 0.png, 1.png, ... in dir_/relative.
  void Files(const std::string& relative, int count) {
    const fs::path folder = dir_ / relative;
    fs::create_directories(folder);
    for (int i = 0; i < count; ++i) std::ofstream(folder / (std::to_string(i) + ".png"));
  }

  ::selene::testing::TempDir temp_{"selene-data-item-count-test"};
  fs::path dir_;
};

TEST_F(DataItemCountTest, MoonCountsRendersNotMasks) {
  Files("images/render", 5);
  Files("images/ground", 5);
  Files("images/clean", 5);
  std::ofstream(dir_ / "images/render/.hidden");
  EXPECT_EQ(CountDataItems(v1::DATA_KIND_MOON, dir_.string()), 5);
  Files("train/images/render", 3);
  Files("val/render", 2);
  EXPECT_EQ(CountDataItems(v1::DATA_KIND_MOON, dir_.string()), 10);
}

TEST_F(DataItemCountTest, SegmentationFolderCountsImageFolders) {
  Files("images", 4);
  Files("masks", 4);
  Files("train", 6);
  Files("trainannot", 6);
  Files("val", 2);
  Files("valannot", 2);
  EXPECT_EQ(CountDataItems(v1::DATA_KIND_SEGMENTATION_FOLDER, dir_.string()), 12);
}

TEST_F(DataItemCountTest, MissingFoldersCountZeroAndOtherKindsAreUnknown) {
  EXPECT_EQ(CountDataItems(v1::DATA_KIND_MOON, (dir_ / "missing").string()), 0);
  EXPECT_EQ(CountDataItems(v1::DATA_KIND_TINY_IMAGENET, dir_.string()), -1);
  EXPECT_EQ(CountDataItems(v1::DATA_KIND_SYNTHETIC_MOON, dir_.string()), -1);
}

}  // namespace
}  // namespace selene::jobs
