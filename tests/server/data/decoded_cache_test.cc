// The on-disk decoded-image cache through LoadDataset: a second load hits with identical tensors
// and findings; changed, added or removed files miss; damaged cache files are ignored and
// rewritten, never trusted.
#include "server/data/decoded_cache.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "server/data/dataset_loader.h"
#include "tests/server/data/data_test_util.h"

namespace selene::data {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class DecodedCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    moon_ = dir_ / "data/moon";
    for (int i = 1; i <= 6; ++i) AddPair(i);
    // One unreadable render, so findings must survive the cache too.
    testing::WriteBytes(moon_ + "/images/render/render0009.png", testing::RandomBytes(100, 9));
    testing::WriteImage(moon_ + "/images/ground/ground0009.png", cv::Mat::zeros(24, 40, CV_8UC1));
    options_.kind = DatasetKind::kMoon;
    options_.task = train::Task::kBinarySegmentation;
    options_.data_root = dir_ / "data";
    options_.path = "moon";
    options_.image_size = 16;
    options_.decode_threads = 2;
    options_.cache_dir = dir_ / "cache";
  }

  void AddPair(int frame) {
    const std::string id = std::to_string(1000 + frame);
    testing::WriteImage(moon_ + "/images/render/render" + id + ".png",
                        testing::PatternImage(40, 24, frame));
    cv::Mat mask = cv::Mat::zeros(24, 40, CV_8UC3);
    mask(cv::Rect(0, 0, 4 * frame, 6)).setTo(cv::Scalar(0, 255, 0));  // green rocks
    mask(cv::Rect(0, 18, 40, 6)).setTo(cv::Scalar(0, 0, 255));        // red sky
    testing::WriteImage(moon_ + "/images/ground/ground" + id + ".png", mask);
  }

  LoadedDataset Load() {
    auto loaded = LoadDataset(options_);
    EXPECT_TRUE(loaded.ok()) << loaded.status();
    return loaded.ok() ? *std::move(loaded) : LoadedDataset{};
  }

  std::string CacheFile() {
    std::vector<std::string> files;
    for (const auto& entry : fs::directory_iterator(options_.cache_dir)) {
      files.push_back(entry.path().string());
    }
    EXPECT_EQ(files.size(), 1u);
    return files.empty() ? "" : files.front();
  }

  static void ExpectSameData(const LoadedDataset& a, const LoadedDataset& b) {
    EXPECT_TRUE(torch::equal(a.split.train.images, b.split.train.images));
    EXPECT_TRUE(torch::equal(a.split.train.targets, b.split.train.targets));
    EXPECT_TRUE(torch::equal(a.split.val.images, b.split.val.images));
    EXPECT_TRUE(torch::equal(a.split.val.targets, b.split.val.targets));
    EXPECT_EQ(a.train_names, b.train_names);
    EXPECT_EQ(a.val_names, b.val_names);
    EXPECT_EQ(a.summary.unreadable, b.summary.unreadable);
    EXPECT_EQ(a.summary.image_sizes, b.summary.image_sizes);
    EXPECT_EQ(a.summary.pixels_per_class, b.summary.pixels_per_class);
    EXPECT_EQ(a.summary.empty_masks, b.summary.empty_masks);
  }

  testing::TempDir dir_;
  std::string moon_;
  DatasetOptions options_;
};

TEST_F(DecodedCacheTest, SecondLoadHitsWithIdenticalTensors) {
  const LoadedDataset first = Load();
  EXPECT_FALSE(first.cache_hit);
  EXPECT_EQ(first.split.train.size() + first.split.val.size(), 6);
  ASSERT_EQ(first.summary.unreadable.size(), 1u);
  EXPECT_THAT(first.summary.unreadable[0], HasSubstr("render0009.png"));
  EXPECT_THAT(CacheFile(), HasSubstr("/moon-"));
  const LoadedDataset second = Load();
  EXPECT_TRUE(second.cache_hit);
  EXPECT_TRUE(second.summary.cache_hit);
  ExpectSameData(first, second);
  // Without a cache_dir nothing is read or written.
  options_.cache_dir.clear();
  EXPECT_FALSE(Load().cache_hit);
}

TEST_F(DecodedCacheTest, ChangedAddedOrRemovedFilesMiss) {
  const LoadedDataset first = Load();
  ASSERT_TRUE(Load().cache_hit);

  const std::string touched = moon_ + "/images/ground/ground1003.png";
  fs::last_write_time(touched, fs::last_write_time(touched) + std::chrono::seconds(10));
  const LoadedDataset after_touch = Load();
  EXPECT_FALSE(after_touch.cache_hit);
  ExpectSameData(first, after_touch);  // same content, re-decoded
  EXPECT_TRUE(Load().cache_hit);

  AddPair(7);
  const LoadedDataset added = Load();
  EXPECT_FALSE(added.cache_hit);
  EXPECT_EQ(added.split.train.size() + added.split.val.size(), 7);
  EXPECT_TRUE(Load().cache_hit);

  fs::remove(moon_ + "/images/render/render1002.png");
  const LoadedDataset removed = Load();
  EXPECT_FALSE(removed.cache_hit);
  EXPECT_EQ(removed.split.train.size() + removed.split.val.size(), 6);
}

TEST_F(DecodedCacheTest, OtherOptionsDoNotShareACacheFile) {
  Load();
  options_.image_size = 8;
  const LoadedDataset smaller = Load();
  EXPECT_FALSE(smaller.cache_hit);
  EXPECT_EQ(smaller.split.train.images.size(2), 8);
  EXPECT_TRUE(Load().cache_hit);
  options_.image_size = 16;
  EXPECT_TRUE(Load().cache_hit);
}

TEST_F(DecodedCacheTest, DamagedCacheFilesAreIgnoredThenRewritten) {
  const LoadedDataset first = Load();
  const std::string file = CacheFile();
  const std::string good = testing::ReadFile(file);
  ASSERT_GT(good.size(), 2000u);

  struct Damage {
    std::string bytes;
    std::string reason;
  };
  std::string flipped = good;
  flipped[good.size() / 2] ^= 0x20;  // inside the image bytes
  const Damage damages[] = {
      {flipped, "checksum"},
      {good.substr(0, good.size() / 3), "truncated"},
      {testing::RandomBytes(good.size(), 4), "not a Selene cache file"},
      {"", "not a Selene cache file"},
  };
  for (const Damage& damage : damages) {
    SCOPED_TRACE(damage.reason);
    testing::WriteBytes(file, damage.bytes);
    const LoadedDataset again = Load();
    EXPECT_FALSE(again.cache_hit);
    EXPECT_THAT(::testing::PrintToString(again.summary.warnings), HasSubstr(damage.reason));
    ExpectSameData(first, again);
    // The re-decoded data replaced the damaged file.
    EXPECT_EQ(testing::ReadFile(file), good);
    EXPECT_TRUE(Load().cache_hit);
  }
}

TEST_F(DecodedCacheTest, ForeignKeyIsDataLoss) {
  Load();
  CacheKey other;
  other.identity = "something else";
  other.content = "something else";
  auto loaded = LoadDecodedCache(CacheFile(), other);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kDataLoss);
  EXPECT_THAT(loaded.status().message(), HasSubstr("key differs"));
  EXPECT_EQ(LoadDecodedCache(dir_ / "none.selene-cache", other).status().code(),
            StatusCode::kNotFound);
}

}  // namespace
}  // namespace selene::data
