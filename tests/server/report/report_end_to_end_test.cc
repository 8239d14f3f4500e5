// The whole report of a run on synthetic data: every artifact written into one folder, and
// report.md's image links resolving to decodable images next to it.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <opencv2/imgcodecs.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "server/report/confusion_plot.h"
#include "server/report/curves_plot.h"
#include "server/report/report_markdown.h"
#include "server/report/sample_grid.h"
#include "server/train/synthetic_data.h"
#include "spec/json_io.h"
#include "tests/testing/files.h"
#include "tests/testing/tiny_job_specs.h"

namespace selene::report {
namespace {

std::filesystem::path OutDir(const std::string& name) {
  const char* look = std::getenv("SELENE_REPORT_LOOK");
  std::filesystem::path dir =
      std::filesystem::path(look != nullptr ? look : ::testing::TempDir()) / name;
  std::filesystem::create_directories(dir);
  return dir;
}

std::vector<train::EpochRecord> History(train::Task task, int epochs) {
  const std::string headline = task == train::Task::kClassification ? "top1" : "dice";
  std::vector<train::EpochRecord> history;
  for (int e = 0; e < epochs; ++e) {
    train::EpochRecord r;
    r.epoch = e;
    r.train_loss = 0.7 * std::exp(-0.35 * e) + 0.08;
    r.val_loss = 0.75 * std::exp(-0.3 * e) + 0.12 + 0.015 * std::sin(2.0 * e);
    const double score = 0.92 - 0.55 * std::exp(-0.45 * e);
    if (task == train::Task::kClassification) {
      r.val_metrics = {
          {"top1", score}, {"top5", std::min(1.0, score + 0.07)}, {"macro_f1", score - 0.03}};
      r.train_metrics = {
          {"top1", score + 0.03}, {"top5", std::min(1.0, score + 0.08)}, {"macro_f1", score}};
    } else {
      r.val_metrics = {
          {"dice", score}, {"iou", score / (2 - score)}, {"pixel_accuracy", 0.93 + 0.06 * score}};
      r.train_metrics = {{"dice", score + 0.02},
                         {"iou", (score + 0.02) / (1.98 - score)},
                         {"pixel_accuracy", 0.94 + 0.05 * score}};
    }
    r.learning_rate = 1e-3 * 0.5 * (1 + std::cos(M_PI * e / epochs));
    r.seconds = 4.0;
    history.push_back(r);
  }
  return history;
}

// Every ![alt](file) of report.md names a decodable image in the same folder.
void ExpectImagesResolve(const std::filesystem::path& report, int expected) {
  const std::string md = testing::ReadFile(report);
  const std::regex link(R"(!\[[^\]]*\]\(([^)]+)\))");
  int found = 0;
  for (auto it = std::sregex_iterator(md.begin(), md.end(), link); it != std::sregex_iterator();
       ++it) {
    const std::filesystem::path image = report.parent_path() / (*it)[1].str();
    EXPECT_FALSE(cv::imread(image.string()).empty()) << image;
    ++found;
  }
  EXPECT_EQ(found, expected) << md;
}

TEST(ReportEndToEndTest, BinarySegmentationRunOnSyntheticMoon) {
  train::SyntheticMoonOptions options;
  options.count = 6;
  options.image_size = 64;
  const train::TensorDataset moon = train::MakeSyntheticMoon(options);
  // A plausible prediction: the truth grown by a pixel, with one rock missed.
  torch::Tensor truth = moon.targets.to(torch::kFloat).unsqueeze(1);
  torch::Tensor grown = torch::max_pool2d(truth, 3, 1, 1).squeeze(1).to(torch::kLong);
  grown.slice(1, 0, 32).slice(2, 0, 32).zero_();

  const std::filesystem::path dir = OutDir("moon-run");
  SampleSet samples{moon.task, moon.images, grown, moon.targets, moon.class_names};
  ASSERT_TRUE(WriteSamplesPng((dir / "samples.png").string(), samples).ok());
  const std::vector<train::EpochRecord> history = History(moon.task, 12);
  ASSERT_TRUE(WriteCurvesPng((dir / "curves.png").string(), history, moon.task, 9).ok());

  StatusOr<v1::JobSpec> spec =
      spec::LoadJobSpecFile(std::string(SELENE_CONFIGS_DIR) + "/encoder_unet_moon_finetune.json");
  ASSERT_TRUE(spec.ok()) << spec.status();
  ReportInputs in;
  in.title = "moon-encoder-finetune";
  in.spec = std::make_shared<const spec::ResolvedJobSpec>(testing::MustResolve(*spec));
  in.parameters = 3455537;
  in.architecture_table = "(models::FormatSummary output)";
  in.data_summary = "synthetic_moon: 6 images of 64x64";
  in.history = history;
  in.best_epoch = 9;
  in.images = {"curves.png", "samples.png"};
  ASSERT_TRUE(WriteReportMarkdown((dir / "report.md").string(), in).ok());
  ExpectImagesResolve(dir / "report.md", 2);

  // The real spec's settings, read back the way people write them.
  const std::string md = FormatReportMarkdown(in);
  for (const char* setting : {
           "| model             | encoder U-Net (encoder fine-tuned)",
           "| encoder training  | frozen, then trained from epoch 6 at lr x 0.1; weights from "
           "`runs/classifier/best.pt`",
           "| optimizer         | AdamW, lr 0.001, weight decay 0.0001, betas 0.9/0.999",
           "| schedule          | cosine (final factor 0.01); linear warm-up over 1 epoch from "
           "lr x 0.1",
           "| loss              | BCE + Dice (BCE weight 0.5, Dice weight 0.5, pos weight 3, Dice "
           "smooth 1)",
           "| augmentation      | horizontal flip, brightness 0.1, contrast 0.1",
           "| epochs            | 25 ",
           "| monitor           | dice ",
           "- path: `moon`",
           "Trained 12 epochs of 25; the best epoch was 10 by Dice = 0.9104",
       }) {
    EXPECT_NE(md.find(setting), std::string::npos) << setting << "\n" << md;
  }
}

TEST(ReportEndToEndTest, ClassificationRunOnSyntheticShapes) {
  train::SyntheticShapesOptions options;
  options.count = 16;
  options.num_classes = 6;
  const train::TensorDataset shapes = train::MakeSyntheticShapes(options);
  torch::Tensor predictions = shapes.targets.clone();
  predictions[3] = (predictions[3] + 1) % 6;  // three mistakes
  predictions[8] = (predictions[8] + 2) % 6;
  predictions[13] = (predictions[13] + 1) % 6;
  const torch::Tensor confusion =
      torch::bincount(shapes.targets * 6 + predictions, {}, 36).view({6, 6}) * 10 +
      torch::eye(6, torch::kLong) * 40;

  const std::filesystem::path dir = OutDir("shapes-run");
  SampleSet samples{shapes.task, shapes.images, predictions, shapes.targets, shapes.class_names};
  ASSERT_TRUE(WriteSamplesPng((dir / "samples.png").string(), samples).ok());
  ASSERT_TRUE(
      WriteConfusionPng((dir / "confusion.png").string(), confusion, shapes.class_names).ok());
  const std::vector<train::EpochRecord> history = History(shapes.task, 20);
  ASSERT_TRUE(WriteCurvesPng((dir / "curves.png").string(), history, shapes.task, 17).ok());

  ReportInputs in;
  in.title = "shapes-classifier";
  v1::JobSpec classifier;
  classifier.set_task(v1::TASK_CLASSIFICATION);
  classifier.mutable_model()->mutable_classifier();
  classifier.mutable_data()->set_kind(v1::DATA_KIND_SYNTHETIC_SHAPES);
  in.spec = std::make_shared<const spec::ResolvedJobSpec>(testing::MustResolve(classifier));
  in.parameters = 2846440;
  in.history = history;
  in.best_epoch = 17;
  in.monitor = "top1";
  in.images = {"curves.png", "samples.png", "confusion.png"};
  ASSERT_TRUE(WriteReportMarkdown((dir / "report.md").string(), in).ok());
  ExpectImagesResolve(dir / "report.md", 3);
}

TEST(ReportEndToEndTest, MultiClassRunOnSyntheticShapes) {
  train::SyntheticShapesOptions options;
  options.count = 4;
  options.num_classes = 5;
  options.image_size = 96;
  const train::TensorDataset shapes = train::MakeSyntheticShapesSegmentation(options);
  torch::Tensor truths = shapes.targets.clone();
  truths.slice(1, 88, 96).fill_(255);  // a void strip, as CamVid-style data has
  // The prediction: the truth shifted right by two pixels.
  const torch::Tensor predictions = torch::roll(shapes.targets, {2}, {2});

  const std::filesystem::path dir = OutDir("multiclass-run");
  SampleSet samples{shapes.task, shapes.images, predictions, truths, shapes.class_names, 255};
  ASSERT_TRUE(WriteSamplesPng((dir / "samples.png").string(), samples).ok());
  EXPECT_FALSE(cv::imread((dir / "samples.png").string()).empty());
}

}  // namespace
}  // namespace selene::report
