// Segmentation folders through LoadDataset: the real CamVid sample (own split, ids, void
// ignored), and layouts written by the tests: out-of-range labels, palettes, class names,
// images/ + masks/ with a fraction split, binary tasks.
#include "server/data/segmentation_folder_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "server/data/dataset_loader.h"
#include "tests/server/data/data_test_util.h"

namespace selene::data {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

DatasetOptions FolderOptions(const std::string& root, const std::string& path, int64_t size) {
  DatasetOptions options;
  options.kind = DatasetKind::kSegmentationFolder;
  options.task = train::Task::kMultiClassSegmentation;
  options.data_root = root;
  options.path = path;
  options.image_size = size;
  options.decode_threads = 2;
  return options;
}

TEST(CamVidSampleTest, OwnSplitIdsAndIgnoredVoid) {
  SELENE_SKIP_WITHOUT_SAMPLE(camvid, "camvid-sample");
  DatasetOptions options = FolderOptions(camvid + "/..", "camvid-sample", 128);
  options.num_classes = 12;
  options.ignore_index = 11;
  auto d = LoadDataset(options);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->split.train.size(), 40);
  EXPECT_EQ(d->split.val.size(), 20);
  EXPECT_EQ(d->summary.split, "val/ + valannot/ folders");
  EXPECT_EQ(d->summary.images_found, 60);
  EXPECT_EQ(d->summary.masks_found, 60);
  EXPECT_EQ(d->summary.image_sizes.at("480x360"), 60);
  EXPECT_TRUE(d->summary.unreadable.empty());
  EXPECT_TRUE(d->summary.unpaired.empty());
  EXPECT_EQ(d->split.train.targets.scalar_type(), torch::kInt64);
  EXPECT_EQ(d->split.train.targets.sizes(), (std::vector<int64_t>{40, 128, 128}));
  EXPECT_EQ(d->split.train.ignore_index, 11);
  EXPECT_EQ(d->split.train.class_names.size(), 12u);
  EXPECT_EQ(d->split.train.class_names[3], "class_3");
  const torch::Tensor all = torch::cat({d->split.train.targets, d->split.val.targets});
  EXPECT_GE(all.min().item<int64_t>(), 0);
  EXPECT_EQ(all.max().item<int64_t>(), 11);
  // Void pixels are counted as ignored, not as class 11.
  const int64_t void_pixels = all.eq(11).sum().item<int64_t>();
  EXPECT_GT(void_pixels, 0);
  EXPECT_EQ(d->summary.ignored_pixels, void_pixels);
  ASSERT_EQ(d->summary.pixels_per_class.size(), 12u);
  EXPECT_EQ(d->summary.pixels_per_class[11], 0);
  EXPECT_EQ(d->summary.pixels_per_class[3], all.eq(3).sum().item<int64_t>());  // road
  int64_t labelled = 0;
  for (int64_t c : d->summary.pixels_per_class) labelled += c;
  EXPECT_EQ(labelled + void_pixels, 60 * 128 * 128);

  // A stored mask at native size equals the label PNG exactly.
  options.image_size = 480;
  auto native = LoadDataset(options);
  ASSERT_TRUE(native.ok()) << native.status();
  ASSERT_EQ(native->train_names[0], "train/0001TP_006690.png");
  const cv::Mat label = cv::imread(camvid + "/trainannot/0001TP_006690.png", cv::IMREAD_UNCHANGED);
  ASSERT_EQ(label.type(), CV_8UC1);
  cv::Mat square;
  cv::resize(label, square, cv::Size(480, 480), 0, 0, cv::INTER_NEAREST);
  const torch::Tensor expected =
      torch::from_blob(square.data, {480, 480}, torch::kUInt8).to(torch::kInt64);
  EXPECT_TRUE(torch::equal(native->split.train.targets[0], expected));
}

TEST(CamVidSampleTest, LabelAboveTheClassCountIsAnErrorNamingTheFile) {
  SELENE_SKIP_WITHOUT_SAMPLE(camvid, "camvid-sample");
  // 11 classes and the default ignore id: void (11) is out of range.
  DatasetOptions options = FolderOptions(camvid + "/..", "camvid-sample", 64);
  options.num_classes = 11;
  auto d = LoadDataset(options);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(d.status().message(), AllOf(HasSubstr("annot/0001TP_"), HasSubstr("holds id 11"),
                                          HasSubstr("num_classes is 11")));
}

TEST(SegmentationLayoutTest, OutOfRangeLabelNamesFileAndValue) {
  testing::TempDir dir;
  const std::string set = dir / "set";
  cv::Mat labels(8, 8, CV_8UC1, cv::Scalar(1));
  testing::WriteImage(set + "/images/a.png", testing::PatternImage(8, 8, 1));
  testing::WriteImage(set + "/masks/a.png", labels);
  labels.at<uint8_t>(3, 3) = 7;
  testing::WriteImage(set + "/images/b.jpg", testing::PatternImage(8, 8, 2));
  testing::WriteImage(set + "/masks/b.png", labels);
  DatasetOptions options = FolderOptions(dir.path(), "set", 8);
  options.num_classes = 3;
  auto d = LoadDataset(options);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(d.status().message(),
              AllOf(HasSubstr("masks/b.png holds id 7"), HasSubstr("num_classes is 3")));
  EXPECT_THAT(d.status().message(), ::testing::Not(HasSubstr("masks/a.png")));
  // With 7 as the ignore id it loads, and those pixels are ignored.
  options.ignore_index = 7;
  auto ok = LoadDataset(options);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->summary.ignored_pixels, 1);
  EXPECT_THAT(ok->summary.pixels_per_class, ElementsAre(0, 127, 0));
  // The stems pair a .jpg image with a .png mask.
  EXPECT_EQ(ok->split.train.size() + ok->split.val.size(), 2);
}

TEST(SegmentationLayoutTest, PaletteMasksWithClassDict) {
  testing::TempDir dir;
  const std::string set = dir / "set";
  testing::WriteBytes(set + "/class_dict.csv",
                      "name,r,g,b\nsky,0,0,255\nroad,128,64,128\nvoid,0,0,0\n");
  cv::Mat mask(4, 4, CV_8UC3, cv::Scalar(255, 0, 0));          // BGR blue = sky
  mask(cv::Rect(0, 2, 4, 2)).setTo(cv::Scalar(128, 64, 128));  // road
  mask.at<cv::Vec3b>(3, 3) = {0, 0, 0};                        // void
  mask.at<cv::Vec3b>(0, 0) = {1, 2, 3};                        // not in the palette
  testing::WriteImage(set + "/train/x.png", testing::PatternImage(4, 4, 1));
  testing::WriteImage(set + "/trainannot/x.png", mask);
  DatasetOptions options = FolderOptions(dir.path(), "set", 4);
  options.ignore_index = 2;
  auto d = LoadDataset(options);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_THAT(d->split.train.class_names, ElementsAre("sky", "road", "void"));
  EXPECT_EQ(d->summary.unmatched_colour_pixels, 1);
  EXPECT_THAT(::testing::PrintToString(d->summary.warnings), HasSubstr("not in class_dict.csv"));
  const torch::Tensor ids = d->split.train.targets[0];
  EXPECT_EQ(ids[0][0].item<int64_t>(), 2);  // unmatched -> ignore id
  EXPECT_EQ(ids[0][1].item<int64_t>(), 0);
  EXPECT_EQ(ids[2][0].item<int64_t>(), 1);
  EXPECT_EQ(ids[3][3].item<int64_t>(), 2);
  EXPECT_THAT(d->summary.pixels_per_class, ElementsAre(7, 7, 0));
  EXPECT_EQ(d->summary.ignored_pixels, 2);
  // no val/ folder: validation is split off train/ (one item stays in train)
  EXPECT_THAT(::testing::PrintToString(d->summary.warnings), HasSubstr("no val/ folder"));
}

TEST(SegmentationLayoutTest, ClassNamesSourcesAndCounts) {
  testing::TempDir dir;
  const std::string set = dir / "set";
  testing::WriteImage(set + "/images/a.png", testing::PatternImage(6, 6, 1));
  testing::WriteImage(set + "/masks/a.png", cv::Mat(6, 6, CV_8UC1, cv::Scalar(1)));
  DatasetOptions options = FolderOptions(dir.path(), "set", 6);
  auto no_count = LoadDataset(options);
  ASSERT_FALSE(no_count.ok());
  EXPECT_EQ(no_count.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(no_count.status().message(), HasSubstr("num_classes is required"));

  testing::WriteBytes(set + "/classes.txt", "ground\nrock\nsky\n");
  auto named = LoadDataset(options);
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_THAT(named->split.train.class_names, ElementsAre("ground", "rock", "sky"));
  options.num_classes = 4;
  auto mismatch = LoadDataset(options);
  ASSERT_FALSE(mismatch.ok());
  EXPECT_THAT(mismatch.status().message(), AllOf(HasSubstr("classes.txt"), HasSubstr("4")));
}

TEST(SegmentationLayoutTest, FractionSplitAndBinaryTask) {
  testing::TempDir dir;
  const std::string set = dir / "set";
  for (int i = 0; i < 10; ++i) {
    cv::Mat mask = cv::Mat::zeros(10, 10, CV_8UC1);
    mask(cv::Rect(0, 0, i + 1, 1)).setTo(i % 2 ? 255 : 2);
    testing::WriteImage(set + "/images/" + std::to_string(i) + ".png",
                        testing::PatternImage(10, 10, i));
    testing::WriteImage(set + "/masks/" + std::to_string(i) + ".png", mask);
  }
  DatasetOptions options = FolderOptions(dir.path(), "set", 10);
  options.task = train::Task::kBinarySegmentation;
  options.validation_fraction = 0.3;
  auto d = LoadDataset(options);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->split.train.size(), 7);
  EXPECT_EQ(d->split.val.size(), 3);
  EXPECT_EQ(d->split.train.targets.scalar_type(), torch::kUInt8);
  EXPECT_THAT(d->split.train.class_names, ElementsAre("foreground"));
  // Nonzero is foreground: 1 + 2 + ... + 10 pixels in all.
  EXPECT_EQ(d->summary.pixels_per_class[1], 55);
  EXPECT_EQ(d->summary.pixels_per_class[0], 1000 - 55);
}

}  // namespace
}  // namespace selene::data
