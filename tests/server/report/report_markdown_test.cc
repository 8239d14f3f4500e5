#include "server/report/report_markdown.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/testing/files.h"
#include "tests/testing/tiny_job_specs.h"

namespace selene::report {
namespace {

ReportInputs MultiClassRun(int epochs) {
  ReportInputs in;
  in.title = "shapes-multiclass";
  v1::JobSpec spec;
  spec.set_task(v1::TASK_MULTICLASS_SEGMENTATION);
  spec.mutable_model()->mutable_unet()->set_base_width(16);
  spec.mutable_data()->set_kind(v1::DATA_KIND_SYNTHETIC_SHAPES_SEGMENTATION);
  spec.mutable_data()->set_image_size(64);
  spec.mutable_data()->set_num_classes(3);
  spec.mutable_data()->mutable_augmentation()->set_hflip(true);
  v1::TrainingSpec& t = *spec.mutable_training();
  t.set_epochs(epochs);
  t.set_batch_size(16);
  t.mutable_optimizer()->set_kind(v1::OPTIMIZER_KIND_ADAMW);
  t.mutable_optimizer()->set_lr(0.002);
  t.mutable_optimizer()->set_weight_decay(0.01);
  t.mutable_schedule()->set_kind(v1::SCHEDULE_KIND_COSINE);
  t.mutable_loss()->set_kind(v1::LOSS_KIND_CROSS_ENTROPY_DICE);
  t.mutable_loss()->set_ce_weight(0.5);
  t.mutable_loss()->set_dice_weight(0.5);
  t.set_monitor("mean_dice");
  t.set_seed(7);
  in.spec = std::make_shared<const spec::ResolvedJobSpec>(testing::MustResolve(spec));
  in.architecture_table = "stage  in  out  stride  parameters\ndown1   3   16       1  2,768\n";
  in.parameters = 1942577;
  in.data_summary = "synthetic shapes: 800 train, 200 val, 64x64";
  for (int e = 0; e < epochs; ++e) {
    train::EpochRecord r;
    r.epoch = e;
    r.train_loss = 1.0 / (e + 1);
    r.val_loss = 1.2 / (e + 1);
    r.learning_rate = 0.002;
    r.seconds = 3.25;
    r.val_metrics = {
        {"mean_dice", 0.5 + 0.01 * e}, {"mean_iou", 0.4},  {"pixel_accuracy", 0.9},
        {"dice/background", 0.95},     {"dice/disc", 0.6}, {"dice/square", std::nan("")},
        {"iou/background", 0.9},       {"iou/disc", 0.45}, {"iou/square", std::nan("")}};
    in.history.push_back(r);
  }
  in.best_epoch = epochs - 2;
  in.images = {"curves.png", "samples.png"};
  return in;
}

TEST(ReportMarkdownTest, HasEverySectionTablesAndImages) {
  const ReportInputs in = MultiClassRun(4);
  const testing::TempDir dir;
  const std::string path = dir / "report.md";
  ASSERT_TRUE(WriteReportMarkdown(path, in).ok());
  const std::string md = testing::ReadFile(path);
  EXPECT_EQ(md.rfind("# shapes-multiclass\n", 0), 0u) << md;
  size_t last = 0;
  for (const char* section : {"## Metrics", "## Hyperparameters", "## Architecture", "## Data",
                              "## Plots", "## History"}) {
    const size_t at = md.find(section);
    ASSERT_NE(at, std::string::npos) << section << "\n" << md;
    EXPECT_GT(at, last) << section << " out of order";
    last = at;
  }
  // Summary paragraph.
  EXPECT_NE(md.find("Multi-class segmentation with a U-Net of 1,942,577 parameters"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("the best epoch was 3 by mean Dice = 0.5200"), std::string::npos) << md;
  // Metrics: best and final columns; per-class with "-" for an undefined class.
  EXPECT_NE(md.find("| metric         | best (epoch 3) | final (epoch 4) |"), std::string::npos)
      << md;
  EXPECT_NE(md.find("| mean Dice      |         0.5200 |          0.5300 |"), std::string::npos)
      << md;
  EXPECT_NE(md.find("| square     |      - |      - |"), std::string::npos) << md;
  EXPECT_NE(md.find("| disc       | 0.6000 | 0.4500 |"), std::string::npos) << md;
  // Hyperparameters.
  EXPECT_NE(md.find("AdamW, lr 0.002, weight decay 0.01"), std::string::npos) << md;
  // The resolved spec fills dice_smooth's default (1), which the report shows like any setting.
  EXPECT_NE(md.find("cross-entropy + Dice (CE weight 0.5, Dice weight 0.5, Dice smooth 1)"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| augmentation      | horizontal flip"), std::string::npos) << md;
  EXPECT_NE(md.find("| seed              | 7 "), std::string::npos) << md;
  // Architecture and data in code blocks.
  EXPECT_NE(md.find("```text\nstage  in  out  stride  parameters\n"), std::string::npos) << md;
  EXPECT_NE(md.find("```text\nsynthetic shapes: 800 train"), std::string::npos) << md;
  EXPECT_NE(md.find("- kind: synthetic_shapes_segmentation"), std::string::npos);
  // Images and history (best epoch bold, right-aligned numbers).
  EXPECT_NE(md.find("![curves](curves.png)"), std::string::npos);
  EXPECT_NE(md.find("![samples](samples.png)"), std::string::npos);
  EXPECT_NE(md.find("| **3** |     0.3333 |   0.4000 |        0.5200 | 0.002 |     3.2 |"),
            std::string::npos)
      << md;
}

TEST(ReportMarkdownTest, LongRunsSkipTheHistoryTableAndNoBestEpochIsSaid) {
  ReportInputs in = MultiClassRun(120);
  std::string md = FormatReportMarkdown(in);
  EXPECT_NE(md.find("120 epochs: too many for a table; see history.csv."), std::string::npos);
  EXPECT_EQ(md.find("| epoch |"), std::string::npos);

  in = MultiClassRun(2);
  in.best_epoch = -1;
  in.images.clear();
  md = FormatReportMarkdown(in);
  EXPECT_NE(md.find("no best epoch was recorded"), std::string::npos) << md;
  EXPECT_EQ(md.find("## Plots"), std::string::npos);
  EXPECT_NE(md.find("| final (epoch 2) |"), std::string::npos) << md;

  EXPECT_FALSE(WriteReportMarkdown("/nonexistent/report.md", in).ok());
}

}  // namespace
}  // namespace selene::report
