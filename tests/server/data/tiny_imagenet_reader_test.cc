// Tiny ImageNet through LoadDataset: the real 10-class sample (counts, val labels from
// val_annotations.txt, names from words.txt, subsets, greyscale files, thread independence) and
// small layouts written by the tests (annotation problems, pooled split).
#include "server/data/tiny_imagenet_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <chrono>
#include <fstream>
#include <map>
#include <memory>

#include "absl/strings/str_split.h"
#include "server/data/dataset_loader.h"
#include "tests/server/data/data_test_util.h"

namespace selene::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kSample[] = "tiny-imagenet-200-10c";

DatasetOptions TinyOptions(const std::string& root, const std::string& path) {
  DatasetOptions options;
  options.kind = DatasetKind::kTinyImageNet;
  options.task = train::Task::kClassification;
  options.data_root = root;
  options.path = path;
  options.image_size = 128;
  options.decode_threads = 2;
  return options;
}

std::string SharedRoot() {
  const char* root = std::getenv("SELENE_SHARED_DATA");
  return root ? root : "";
}

std::vector<std::string> Wnids(const std::string& folder) {
  std::ifstream in(folder + "/wnids.txt");
  std::vector<std::string> wnids;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) wnids.push_back(line);
  }
  return wnids;
}

// The image as the loader should store it: RGB, CHW, uint8.
torch::Tensor Expected(const cv::Mat& bgr) {
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return torch::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, torch::kUInt8)
      .permute({2, 0, 1})
      .clone();
}

int64_t RowOf(const std::vector<std::string>& names, const std::string& name) {
  auto it = std::find(names.begin(), names.end(), name);
  return it == names.end() ? -1 : it - names.begin();
}

// The whole sample, loaded once for the suite (2 threads).
class TinySampleTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (testing::SharedData(kSample).empty()) return;
    const auto start = std::chrono::steady_clock::now();
    auto loaded = LoadDataset(TinyOptions(SharedRoot(), kSample));
    two_thread_seconds_ =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    full_ = std::make_unique<LoadedDataset>(*std::move(loaded));
  }
  static void TearDownTestSuite() { full_.reset(); }
  void SetUp() override {
    if (testing::SharedData(kSample).empty()) {
      GTEST_SKIP() << "real sample " << kSample
                   << " not found: set SELENE_SHARED_DATA to the shared data folder";
    }
    ASSERT_NE(full_, nullptr);
  }
  static std::unique_ptr<LoadedDataset> full_;
  static double two_thread_seconds_;
};
std::unique_ptr<LoadedDataset> TinySampleTest::full_;
double TinySampleTest::two_thread_seconds_ = 0;

TEST_F(TinySampleTest, CountsShapesAndClassNames) {
  const LoadedDataset& d = *full_;
  EXPECT_EQ(d.split.train.size(), 5000);
  EXPECT_EQ(d.split.val.size(), 500);
  EXPECT_EQ(d.summary.train_items, 5000);
  EXPECT_EQ(d.summary.val_items, 500);
  EXPECT_EQ(d.summary.images_found, 5500);
  EXPECT_EQ(d.summary.storage_size, 64);  // native size, not the model's 128
  EXPECT_EQ(d.split.train.images.sizes(), (std::vector<int64_t>{5000, 3, 64, 64}));
  EXPECT_EQ(d.split.train.images.scalar_type(), torch::kUInt8);
  EXPECT_EQ(d.split.val.targets.scalar_type(), torch::kInt64);
  EXPECT_EQ(d.split.train.task, train::Task::kClassification);
  EXPECT_THAT(d.split.train.class_names,
              ElementsAre("Egyptian cat", "reel", "volleyball", "rocking chair", "lemon",
                          "bullfrog", "basketball", "cliff", "espresso", "plunger"));
  EXPECT_THAT(d.summary.images_per_class, ::testing::Each(550));
  EXPECT_EQ(d.summary.image_sizes, (std::map<std::string, int64_t>{{"64x64", 5500}}));
  EXPECT_TRUE(d.summary.unreadable.empty());
  EXPECT_TRUE(d.summary.warnings.empty()) << d.summary.warnings.front();
  EXPECT_FALSE(d.cache_hit);
}

TEST_F(TinySampleTest, TrainLabelsFollowTheirFolders) {
  const std::vector<std::string> wnids = Wnids(testing::SharedData(kSample));
  ASSERT_EQ(wnids.size(), 10u);
  const LoadedDataset& d = *full_;
  ASSERT_EQ(d.train_names.size(), 5000u);
  for (size_t i = 0; i < d.train_names.size(); ++i) {
    const std::string wnid = d.train_names[i].substr(6, 9);  // "train/<wnid>/images/..."
    const int64_t expected = std::find(wnids.begin(), wnids.end(), wnid) - wnids.begin();
    ASSERT_EQ(d.split.train.targets[i].item<int64_t>(), expected) << d.train_names[i];
  }
}

TEST_F(TinySampleTest, ValLabelsComeFromAnnotations) {
  const LoadedDataset& d = *full_;
  // From val_annotations.txt: val_1 reel (wnid #1), val_2063 Egyptian cat (#0), val_2071
  // lemon (#4), val_2073 bullfrog (#5).
  const std::pair<const char*, int64_t> known[] = {
      {"val/images/val_1.JPEG", 1},
      {"val/images/val_2063.JPEG", 0},
      {"val/images/val_2071.JPEG", 4},
      {"val/images/val_2073.JPEG", 5},
  };
  for (const auto& [name, label] : known) {
    const int64_t row = RowOf(d.val_names, name);
    ASSERT_GE(row, 0) << name;
    EXPECT_EQ(d.split.val.targets[row].item<int64_t>(), label) << name;
  }
  // And every one of the 500, against the annotation file read here.
  const std::string folder = testing::SharedData(kSample);
  const std::vector<std::string> wnids = Wnids(folder);
  std::ifstream in(folder + "/val/val_annotations.txt");
  std::string line;
  int checked = 0;
  while (std::getline(in, line)) {
    std::vector<std::string> fields = absl::StrSplit(line, '\t');
    const int64_t row = RowOf(d.val_names, "val/images/" + fields[0]);
    ASSERT_GE(row, 0) << fields[0];
    const int64_t label = std::find(wnids.begin(), wnids.end(), fields[1]) - wnids.begin();
    ASSERT_EQ(d.split.val.targets[row].item<int64_t>(), label) << fields[0];
    ++checked;
  }
  EXPECT_EQ(checked, 500);
}

TEST_F(TinySampleTest, PixelsMatchOpenCvAndGreyBecomesThreeEqualChannels) {
  const std::string folder = testing::SharedData(kSample);
  const LoadedDataset& d = *full_;
  // n04540053_447.JPEG is a one-component (greyscale) JPEG.
  const std::string grey_name = "train/n04540053/images/n04540053_447.JPEG";
  const int64_t grey_row = RowOf(d.train_names, grey_name);
  ASSERT_GE(grey_row, 0);
  const cv::Mat grey = cv::imread(folder + "/" + grey_name, cv::IMREAD_GRAYSCALE);
  ASSERT_EQ(grey.size(), cv::Size(64, 64));
  const torch::Tensor expected_grey = torch::from_blob(grey.data, {64, 64}, torch::kUInt8).clone();
  const torch::Tensor stored = d.split.train.images[grey_row];
  for (int c = 0; c < 3; ++c) EXPECT_TRUE(torch::equal(stored[c], expected_grey)) << c;

  const std::string colour_name = "val/images/val_1.JPEG";
  const int64_t colour_row = RowOf(d.val_names, colour_name);
  ASSERT_GE(colour_row, 0);
  const cv::Mat colour = cv::imread(folder + "/" + colour_name, cv::IMREAD_COLOR);
  EXPECT_TRUE(torch::equal(d.split.val.images[colour_row], Expected(colour)));
  EXPECT_FALSE(torch::equal(d.split.val.images[colour_row][0], d.split.val.images[colour_row][1]));
}

TEST_F(TinySampleTest, OneThreadGivesIdenticalTensorsAndCacheHitTiming) {
  DatasetOptions options = TinyOptions(SharedRoot(), kSample);
  options.decode_threads = 1;
  auto start = std::chrono::steady_clock::now();
  auto one = LoadDataset(options);
  const double one_thread =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_TRUE(torch::equal(one->split.train.images, full_->split.train.images));
  EXPECT_TRUE(torch::equal(one->split.train.targets, full_->split.train.targets));
  EXPECT_TRUE(torch::equal(one->split.val.images, full_->split.val.images));
  EXPECT_TRUE(torch::equal(one->split.val.targets, full_->split.val.targets));

  testing::TempDir cache;
  options.decode_threads = 2;
  options.cache_dir = cache.path();
  ASSERT_TRUE(LoadDataset(options).ok());
  start = std::chrono::steady_clock::now();
  auto hit = LoadDataset(options);
  const double hit_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(hit.ok()) << hit.status();
  EXPECT_TRUE(hit->cache_hit);
  EXPECT_TRUE(torch::equal(hit->split.train.images, full_->split.train.images));
  EXPECT_TRUE(torch::equal(hit->split.val.targets, full_->split.val.targets));
  std::cout << "Tiny ImageNet 5,500 files: 1 thread " << one_thread << " s, 2 threads "
            << two_thread_seconds_ << " s, cache hit " << hit_seconds << " s\n";
}

TEST_F(TinySampleTest, FirstNClasses) {
  DatasetOptions options = TinyOptions(SharedRoot(), kSample);
  options.num_classes = 3;
  auto d = LoadDataset(options);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->split.train.size(), 1500);
  EXPECT_EQ(d->split.val.size(), 150);
  EXPECT_THAT(d->split.train.class_names, ElementsAre("Egyptian cat", "reel", "volleyball"));
  EXPECT_THAT(d->summary.images_per_class, ElementsAre(550, 550, 550));
  EXPECT_EQ(d->split.val.targets.max().item<int64_t>(), 2);
}

TEST_F(TinySampleTest, ExplicitClassListInItsOrderAndSmallStorage) {
  DatasetOptions options = TinyOptions(SharedRoot(), kSample);
  options.class_ids = {"n01641577", "n02124075"};  // bullfrog, Egyptian cat
  options.image_size = 32;
  auto d = LoadDataset(options);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_THAT(d->split.train.class_names, ElementsAre("bullfrog", "Egyptian cat"));
  EXPECT_EQ(d->split.train.size(), 1000);
  EXPECT_EQ(d->split.val.size(), 100);
  EXPECT_EQ(d->summary.storage_size, 32);
  EXPECT_EQ(d->split.train.images.sizes(), (std::vector<int64_t>{1000, 3, 32, 32}));
  for (size_t i = 0; i < d->train_names.size(); ++i) {
    const int64_t expected = d->train_names[i].find("n01641577") != std::string::npos ? 0 : 1;
    ASSERT_EQ(d->split.train.targets[i].item<int64_t>(), expected) << d->train_names[i];
  }
  const int64_t row = RowOf(d->val_names, "val/images/val_2073.JPEG");  // bullfrog
  ASSERT_GE(row, 0);
  EXPECT_EQ(d->split.val.targets[row].item<int64_t>(), 0);
  EXPECT_EQ(RowOf(d->val_names, "val/images/val_1.JPEG"), -1);  // reel: not selected
}

TEST_F(TinySampleTest, RefusesUnknownClassesAndTooManyClasses) {
  DatasetOptions options = TinyOptions(SharedRoot(), kSample);
  options.class_ids = {"n01641577", "n99999999"};
  auto unknown = LoadDataset(options);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(unknown.status().message(), HasSubstr("n99999999"));
  options.class_ids.clear();
  options.num_classes = 200;
  auto many = LoadDataset(options);
  ASSERT_FALSE(many.ok());
  EXPECT_EQ(many.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(many.status().message(), HasSubstr("num_classes 200"));
  EXPECT_THAT(many.status().message(), HasSubstr("10 classes"));
}

// A two-class layout in a temp folder: 3 train images per class, 4 val images.
class TinyLayoutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    folder_ = dir_ / "tiny";
    testing::WriteBytes(folder_ + "/wnids.txt", "n001\nn002\n");
    testing::WriteBytes(folder_ + "/words.txt", "n001\tcat, feline\nn002\tdog\nn003\tfox\n");
    int seed = 0;
    for (const char* wnid : {"n001", "n002"}) {
      for (int i = 0; i < 3; ++i) {
        testing::WriteImage(
            folder_ + "/train/" + wnid + "/images/" + wnid + "_" + std::to_string(i) + ".JPEG",
            testing::PatternImage(64, 64, ++seed));
      }
    }
    for (int i = 0; i < 4; ++i) {
      testing::WriteImage(folder_ + "/val/images/val_" + std::to_string(i) + ".JPEG",
                          testing::PatternImage(64, 64, 50 + i));
    }
    // val_3 is not annotated; val_9 is annotated but missing; val_2 has an unknown wnid.
    testing::WriteBytes(folder_ + "/val/val_annotations.txt",
                        "val_0.JPEG\tn002\t0\t0\t5\t5\nval_1.JPEG\tn001\t0\t0\t5\t5\n"
                        "val_2.JPEG\tn003\t0\t0\t5\t5\nval_9.JPEG\tn001\t0\t0\t5\t5\n");
  }
  testing::TempDir dir_;
  std::string folder_;
};

TEST_F(TinyLayoutTest, AnnotationProblemsAreWarningsNamingFiles) {
  auto d = LoadDataset(TinyOptions(dir_.path(), "tiny"));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->split.train.size(), 6);
  EXPECT_THAT(d->val_names, ElementsAre("val/images/val_0.JPEG", "val/images/val_1.JPEG"));
  EXPECT_EQ(d->split.val.targets[0].item<int64_t>(), 1);
  EXPECT_EQ(d->split.val.targets[1].item<int64_t>(), 0);
  EXPECT_THAT(d->split.train.class_names, ElementsAre("cat", "dog"));
  const std::string warnings = ::testing::PrintToString(d->summary.warnings);
  EXPECT_THAT(warnings, HasSubstr("val/images/val_3.JPEG"));
  EXPECT_THAT(warnings, HasSubstr("not in val/val_annotations.txt"));
  EXPECT_THAT(warnings, HasSubstr("val/images/val_9.JPEG"));
  EXPECT_THAT(warnings, HasSubstr("val_2.JPEG (n003)"));
  EXPECT_EQ(d->summary.split, "val/images labelled by val/val_annotations.txt");
}

TEST_F(TinyLayoutTest, ExplicitFractionPoolsTrainAndVal) {
  DatasetOptions options = TinyOptions(dir_.path(), "tiny");
  options.validation_fraction = 0.5;
  options.validation_fraction_set = true;
  auto d = LoadDataset(options);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->split.train.size(), 4);
  EXPECT_EQ(d->split.val.size(), 4);
  EXPECT_THAT(d->summary.split, HasSubstr("fraction 0.5"));
}

TEST_F(TinyLayoutTest, MissingWordsAndWnids) {
  std::filesystem::remove(folder_ + "/words.txt");
  auto d = LoadDataset(TinyOptions(dir_.path(), "tiny"));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_THAT(d->split.train.class_names, ElementsAre("n001", "n002"));
  EXPECT_THAT(::testing::PrintToString(d->summary.warnings), HasSubstr("words.txt missing"));
  std::filesystem::remove(folder_ + "/wnids.txt");
  auto none = LoadDataset(TinyOptions(dir_.path(), "tiny"));
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(none.status().message(), HasSubstr("wnids.txt"));
}

}  // namespace
}  // namespace selene::data
