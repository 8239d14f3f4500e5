// LoadDataset and InspectDataset end to end: bad files (corrupt, truncated, empty, wrongly
// sized) named and left out, folders with nothing usable refused, paths escaping the data root
// refused, progress reported, thread count irrelevant to the result, bad options named.
#include "server/data/dataset_loader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "tests/server/data/data_test_util.h"

namespace selene::data {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

DatasetOptions Options(const std::string& root, const std::string& path) {
  DatasetOptions options;
  options.kind = DatasetKind::kSegmentationFolder;
  options.task = train::Task::kMultiClassSegmentation;
  options.data_root = root;
  options.path = path;
  options.num_classes = 3;
  options.image_size = 16;
  options.decode_threads = 2;
  return options;
}

// images/ + masks/ with 4 good pairs and one of each kind of bad file.
class IntegrityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    set_ = dir_ / "root/set";
    for (int i = 0; i < 4; ++i) Pair("good" + std::to_string(i), 32, 24, i);
    const cv::Mat image = testing::PatternImage(32, 24, 9);
    // Bad images (with good masks).
    testing::WriteBytes(set_ + "/images/corrupt.png", testing::RandomBytes(2000, 1));
    testing::WriteBytes(set_ + "/images/truncated.png", testing::HalfOf(image, ".png"));
    testing::WriteBytes(set_ + "/images/truncated_jpeg.jpg", testing::HalfOf(image, ".jpg"));
    testing::WriteBytes(set_ + "/images/empty.png", "");
    for (const char* stem : {"corrupt", "truncated", "truncated_jpeg", "empty"}) {
      testing::WriteImage(set_ + "/masks/" + std::string(stem) + ".png", Mask(32, 24, 1));
    }
    // Good image, bad masks.
    testing::WriteImage(set_ + "/images/wrong_size.png", image);
    testing::WriteImage(set_ + "/masks/wrong_size.png", Mask(30, 24, 1));
    testing::WriteImage(set_ + "/images/bad_mask.png", image);
    testing::WriteBytes(set_ + "/masks/bad_mask.png", testing::RandomBytes(300, 2));
    // Unpaired both ways.
    testing::WriteImage(set_ + "/images/lonely.png", image);
    testing::WriteImage(set_ + "/masks/orphan.png", Mask(32, 24, 1));
    // Not images at all: ignored.
    testing::WriteBytes(set_ + "/images/notes.txt", "hello");
  }

  static cv::Mat Mask(int width, int height, int seed) {
    cv::Mat mask(height, width, CV_8UC1, cv::Scalar(0));
    mask(cv::Rect(0, 0, width / 2, height)).setTo(1 + seed % 2);
    return mask;
  }

  void Pair(const std::string& stem, int width, int height, int seed) {
    testing::WriteImage(set_ + "/images/" + stem + ".png",
                        testing::PatternImage(width, height, seed));
    testing::WriteImage(set_ + "/masks/" + stem + ".png", Mask(width, height, seed));
  }

  testing::TempDir dir_;
  std::string set_;
};

TEST_F(IntegrityTest, BadFilesAreNamedWithReasonsAndLeftOut) {
  auto d = LoadDataset(Options(dir_ / "root", "set"));
  ASSERT_TRUE(d.ok()) << d.status();
  const DataSummary& s = d->summary;
  EXPECT_EQ(s.train_items + s.val_items, 4);
  EXPECT_EQ(d->split.train.size() + d->split.val.size(), 4);
  EXPECT_EQ(s.images_found, 11);
  EXPECT_EQ(s.masks_found, 11);
  EXPECT_THAT(
      s.unreadable,
      UnorderedElementsAre("images/corrupt.png: corrupt (not a recognised image format)",
                           "images/truncated.png: truncated (PNG ends before its IEND chunk)",
                           "images/truncated_jpeg.jpg: truncated (JPEG has no end-of-image marker)",
                           "images/empty.png: empty file (0 bytes)",
                           "masks/wrong_size.png: wrong size, 30x24 for its image's 32x24 "
                           "(images/wrong_size.png)",
                           "masks/bad_mask.png: corrupt (not a recognised image format)"));
  EXPECT_THAT(s.unpaired, ElementsAre(HasSubstr("images/lonely.png: no mask"),
                                      HasSubstr("masks/orphan.png: no image")));
  EXPECT_EQ(s.image_sizes, (std::map<std::string, int64_t>{{"32x24", 4}}));
  std::vector<std::string> names = d->train_names;
  names.insert(names.end(), d->val_names.begin(), d->val_names.end());
  EXPECT_THAT(names, UnorderedElementsAre("images/good0.png", "images/good1.png",
                                          "images/good2.png", "images/good3.png"));
  // Pixels: half of each 16x16 mask is labelled 1 or 2, the rest 0.
  EXPECT_THAT(s.pixels_per_class, ElementsAre(4 * 128, 2 * 128, 2 * 128));
  // The human text and the JSON name the files too.
  EXPECT_THAT(FormatDataSummary(s), HasSubstr("images/truncated.png: truncated"));
  EXPECT_THAT(DataSummaryToJson(s), HasSubstr("\"images/empty.png: empty file (0 bytes)\""));
}

TEST_F(IntegrityTest, InspectGivesTheSameSummaryAndProgress) {
  DatasetOptions options = Options(dir_ / "root", "set");
  std::vector<DecodeProgress> seen;
  options.on_progress = [&seen](const DecodeProgress& p) { seen.push_back(p); };
  auto s = InspectDataset(options);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->unreadable.size(), 6u);
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().done, 10);  // the 10 paired items
  EXPECT_EQ(seen.back().total, 10);
}

TEST_F(IntegrityTest, OneAndTwoThreadsGiveIdenticalTensors) {
  DatasetOptions options = Options(dir_ / "root", "set");
  options.decode_threads = 1;
  auto one = LoadDataset(options);
  options.decode_threads = 2;
  auto two = LoadDataset(options);
  ASSERT_TRUE(one.ok() && two.ok());
  EXPECT_TRUE(torch::equal(one->split.train.images, two->split.train.images));
  EXPECT_TRUE(torch::equal(one->split.train.targets, two->split.train.targets));
  EXPECT_TRUE(torch::equal(one->split.val.images, two->split.val.images));
  EXPECT_EQ(one->summary.unreadable, two->summary.unreadable);
}

TEST_F(IntegrityTest, NothingUsableIsRefusedNamingTheFolder) {
  for (int i = 0; i < 4; ++i) fs::remove(set_ + "/images/good" + std::to_string(i) + ".png");
  auto d = LoadDataset(Options(dir_ / "root", "set"));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(d.status().message(),
              AllOf(HasSubstr(set_), HasSubstr("no usable items"), HasSubstr("corrupt")));

  fs::create_directories(dir_ / "root/empty/images");
  auto empty = LoadDataset(Options(dir_ / "root", "empty"));
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(empty.status().message(),
              AllOf(HasSubstr(dir_ / "root/empty"), HasSubstr("no image")));
}

TEST_F(IntegrityTest, PathsEscapingTheRootAreRefused) {
  fs::create_directories(dir_ / "outside/images");
  fs::create_directory_symlink(dir_ / "outside", dir_ / "root/link");
  for (const std::string& path :
       std::vector<std::string>{"../outside", dir_ / "outside", "link", "set/../../outside"}) {
    auto d = LoadDataset(Options(dir_ / "root", path));
    ASSERT_FALSE(d.ok()) << path;
    EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument) << path;
    EXPECT_THAT(d.status().message(), AllOf(HasSubstr(path), HasSubstr(dir_ / "root")));
  }
  auto missing = LoadDataset(Options(dir_ / "root", "nothing"));
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("nothing"));
}

TEST_F(IntegrityTest, FileSymlinksLeadingOutsideAreLeftOut) {
  testing::WriteImage(dir_ / "secret.png", testing::PatternImage(32, 24, 5));
  fs::create_symlink(dir_ / "secret.png", set_ + "/images/good0.png.link.png");
  auto d = LoadDataset(Options(dir_ / "root", "set"));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_THAT(::testing::PrintToString(d->summary.unreadable), HasSubstr("outside the data root"));
  EXPECT_EQ(d->summary.train_items + d->summary.val_items, 4);
}

TEST(DatasetLoaderTest, BadOptionsAreNamed) {
  DatasetOptions options;
  options.image_size = 0;
  EXPECT_THAT(LoadDataset(options).status().message(), HasSubstr("image_size 0"));
  options.image_size = 64;
  options.validation_fraction = 1.0;
  EXPECT_THAT(LoadDataset(options).status().message(), HasSubstr("validation_fraction 1"));
}

TEST(DatasetLoaderTest, KindNames) {
  EXPECT_EQ(DatasetKindName(DatasetKind::kTinyImageNet), "tiny_imagenet");
  EXPECT_EQ(DatasetKindName(DatasetKind::kMoon), "moon");
  EXPECT_EQ(DatasetKindName(DatasetKind::kSegmentationFolder), "segmentation_folder");
}

}  // namespace
}  // namespace selene::data
