#include "server/train/trainer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "common/run_folder.h"
#include "server/train/checkpoint.h"
#include "tests/server/train/tiny_network.h"
#include "tests/testing/files.h"
#include "tests/testing/small_disk.h"

namespace selene::train {
namespace {

using testing::MakeSquares;
using testing::MakeTinyNetwork;

class TrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = temp_.path();
    data_.train = MakeSquares(48, 16, 1);
    data_.val = MakeSquares(16, 16, 2);
    options_.task = Task::kBinarySegmentation;
    options_.epochs = 4;
    options_.batch_size = 8;
    options_.loss.kind = LossKind::kBCEDice;
    options_.optimizer.learning_rate = 0.02;
    options_.schedule.kind = ScheduleKind::kCosine;
    options_.schedule.warmup_epochs = 1;
    options_.monitor = "dice";
    UseCheckpointFolder(dir_.string());
  }

  void UseCheckpointFolder(const std::string& folder) {
    options_.best_checkpoint = RunFolder(folder).best_checkpoint();
    options_.last_checkpoint = RunFolder(folder).last_checkpoint();
  }

  ::selene::testing::TempDir temp_{"selene-trainer-test"};
  std::filesystem::path dir_;
  TrainValSplit data_;
  TrainerOptions options_;
};

TEST_F(TrainerTest, LearnsAndWritesBestAndLastCheckpoints) {
  Trainer trainer(MakeTinyNetwork(), options_);
  int epochs_seen = 0, steps_seen = 0;
  TrainerCallbacks callbacks;
  callbacks.on_epoch = [&](const EpochRecord&) { ++epochs_seen; };
  callbacks.on_step = [&](const StepProgress& p) {
    ++steps_seen;
    EXPECT_EQ(p.steps_per_epoch, 6);
  };
  StatusOr<TrainResult> result = trainer.Run(data_, callbacks);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->history.size(), 4u);
  EXPECT_EQ(epochs_seen, 4);
  EXPECT_EQ(steps_seen, 4 * 6);
  EXPECT_LT(result->history.back().train_loss, result->history.front().train_loss);
  EXPECT_GT(result->history.back().val_metrics.at("dice"), 0.5);
  // The best epoch is the first with the highest validation dice.
  int64_t highest = 0;
  for (int64_t e = 1; e < static_cast<int64_t>(result->history.size()); ++e) {
    if (result->history[e].val_metrics.at("dice") >
        result->history[highest].val_metrics.at("dice")) {
      highest = e;
    }
  }
  ASSERT_EQ(result->best_epoch, highest);
  EXPECT_DOUBLE_EQ(result->best_value, result->history[result->best_epoch].val_metrics.at("dice"));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "best.pt"));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "last.pt"));
  for (const EpochRecord& r : result->history) {
    EXPECT_GT(r.images_per_second, 0);
    EXPECT_GT(r.learning_rate, 0);
    EXPECT_GE(r.data_wait_fraction, 0);
  }

  // The best checkpoint reproduces the best epoch's validation score.
  models::Network reloaded = MakeTinyNetwork();
  ASSERT_TRUE(LoadCheckpoint((dir_ / "best.pt").string(), *reloaded).ok());
  Trainer evaluator(reloaded, options_);
  auto evaluation = evaluator.Evaluate(data_.val);
  ASSERT_TRUE(evaluation.ok());
  EXPECT_NEAR(evaluation->second.at("dice"), result->best_value, 1e-9);
}

TEST_F(TrainerTest, ResumedRunContinuesExactlyWhereItStopped) {
  Trainer straight(MakeTinyNetwork(), options_);
  StatusOr<TrainResult> full = straight.Run(data_);
  ASSERT_TRUE(full.ok()) << full.status();

  // Same run in a new folder, cancelled in the middle of epoch 2, then resumed by a new Trainer.
  UseCheckpointFolder((dir_ / "interrupted").string());
  std::atomic<bool> cancel{false};
  TrainerCallbacks callbacks;
  callbacks.on_step = [&](const StepProgress& p) {
    if (p.epoch == 2 && p.step == 3) cancel = true;
  };
  Trainer first(MakeTinyNetwork(), options_);
  StatusOr<TrainResult> partial = first.Run(data_, callbacks, &cancel);
  ASSERT_TRUE(partial.ok()) << partial.status();
  EXPECT_TRUE(partial->cancelled);
  EXPECT_EQ(partial->history.size(), 2u);

  options_.resume = true;
  Trainer second(MakeTinyNetwork(), options_);
  StatusOr<TrainResult> resumed = second.Run(data_);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  ASSERT_EQ(resumed->history.size(), 4u);
  for (size_t e = 0; e < 4; ++e) {
    EXPECT_DOUBLE_EQ(resumed->history[e].learning_rate, full->history[e].learning_rate) << e;
    EXPECT_DOUBLE_EQ(resumed->history[e].val_loss, full->history[e].val_loss) << e;
  }
  auto a = straight.network()->parameters();
  auto b = second.network()->parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
}

// A stop that lands after an epoch's last step stops its validation: last.pt keeps the trained
// epoch's record, and the resumed run validates it without training it again, ending exactly
// where a straight run ends.
TEST_F(TrainerTest, AStopDuringValidationResumesWithoutTrainingTheEpochAgain) {
  Trainer straight(MakeTinyNetwork(), options_);
  StatusOr<TrainResult> full = straight.Run(data_);
  ASSERT_TRUE(full.ok()) << full.status();

  UseCheckpointFolder((dir_ / "interrupted").string());
  std::atomic<bool> cancel{false};
  TrainerCallbacks callbacks;
  callbacks.on_step = [&](const StepProgress& p) {
    if (p.epoch == 1 && p.step == p.steps_per_epoch) cancel = true;
  };
  Trainer first(MakeTinyNetwork(), options_);
  StatusOr<TrainResult> partial = first.Run(data_, callbacks, &cancel);
  ASSERT_TRUE(partial.ok()) << partial.status();
  EXPECT_TRUE(partial->cancelled);
  EXPECT_EQ(partial->history.size(), 1u);
  TrainingState saved;
  models::Network probe = MakeTinyNetwork();
  ASSERT_TRUE(LoadCheckpoint(options_.last_checkpoint, *probe, nullptr, &saved).ok());
  ASSERT_EQ(saved.trained_unvalidated.size(), 1u);
  EXPECT_EQ(saved.trained_unvalidated[0].epoch, 1);

  options_.resume = true;
  int steps_after_resume = 0;
  TrainerCallbacks count_steps;
  count_steps.on_step = [&](const StepProgress& p) { steps_after_resume += p.epoch == 1; };
  Trainer second(MakeTinyNetwork(), options_);
  StatusOr<TrainResult> resumed = second.Run(data_, count_steps);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(steps_after_resume, 0) << "epoch 2 was trained already";
  ASSERT_EQ(resumed->history.size(), 4u);
  for (size_t e = 0; e < 4; ++e) {
    EXPECT_DOUBLE_EQ(resumed->history[e].train_loss, full->history[e].train_loss) << e;
    EXPECT_DOUBLE_EQ(resumed->history[e].val_loss, full->history[e].val_loss) << e;
  }
  auto a = straight.network()->parameters();
  auto b = second.network()->parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
}

TEST_F(TrainerTest, CancelStopsWithinOneStep) {
  std::atomic<bool> cancel{false};
  int steps = 0;
  TrainerCallbacks callbacks;
  callbacks.on_step = [&](const StepProgress&) {
    if (++steps == 2) cancel = true;
  };
  Trainer trainer(MakeTinyNetwork(), options_);
  StatusOr<TrainResult> result = trainer.Run(data_, callbacks, &cancel);
  ASSERT_TRUE(result.ok());
  EXPECT_TRUE(result->cancelled);
  EXPECT_EQ(steps, 2);
  EXPECT_TRUE(result->history.empty());
  EXPECT_TRUE(std::filesystem::exists(dir_ / "last.pt"));
}

// The disk fills up after the first epoch: the second epoch's checkpoint cannot be written, so
// the run ends with that error at once, reports no epoch it could not checkpoint, leaves no
// temporary file, and last.pt still resumes from the first epoch.
TEST_F(TrainerTest, AFullDiskEndsTheRunWithTheFileNamedAndKeepsTheLastGoodCheckpoint) {
  StatusOr<std::unique_ptr<selene::testing::SmallDisk>> disk =
      selene::testing::SmallDisk::Mount((dir_ / "disk").string(), int64_t{8} << 20);
  if (!disk.ok()) GTEST_SKIP() << disk.status().message();
  UseCheckpointFolder((*disk)->dir());
  std::vector<int64_t> reported;
  TrainerCallbacks callbacks;
  callbacks.on_epoch = [&](const EpochRecord& record) {
    reported.push_back(record.epoch);
    // The epoch's checkpoints are on disk before it is reported.
    EXPECT_TRUE(std::filesystem::exists(options_.last_checkpoint));
    ASSERT_TRUE((*disk)->FillLeaving(0).ok());
  };
  Trainer trainer(MakeTinyNetwork(), options_);
  StatusOr<TrainResult> result = trainer.Run(data_, callbacks);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kResourceExhausted) << result.status();
  EXPECT_THAT(std::string(result.status().message()),
              ::testing::MatchesRegex("disk full writing .*/(best|last)\\.pt"));
  EXPECT_EQ(reported, std::vector<int64_t>{0});
  std::set<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator((*disk)->dir())) {
    files.insert(entry.path().filename().string());
  }
  EXPECT_EQ(files, (std::set<std::string>{"best.pt", "filler", "last.pt"}));

  (*disk)->Free();
  TrainingState state;
  models::Network restored = MakeTinyNetwork();
  ASSERT_TRUE(LoadCheckpoint(options_.last_checkpoint, *restored, nullptr, &state).ok());
  EXPECT_EQ(state.next_epoch, 1);
  EXPECT_EQ(state.history.size(), 1u);
}

TEST_F(TrainerTest, EarlyStoppingHonoursPatience) {
  options_.epochs = 10;
  options_.optimizer.learning_rate = 1e-9;  // nothing improves by min_delta
  options_.early_stopping.enabled = true;
  options_.early_stopping.patience = 2;
  options_.early_stopping.min_delta = 0.5;
  Trainer trainer(MakeTinyNetwork(), options_);
  StatusOr<TrainResult> result = trainer.Run(data_);
  ASSERT_TRUE(result.ok());
  EXPECT_TRUE(result->stopped_early);
  EXPECT_EQ(result->history.size(), 3u);  // the best epoch, then 2 without improvement
  EXPECT_EQ(result->best_epoch, 0);
}

TEST_F(TrainerTest, BadOptionsAreErrorsNamingTheField) {
  options_.batch_size = 0;
  StatusOr<TrainResult> result = Trainer(MakeTinyNetwork(), options_).Run(data_);
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(result.status().message()).find("training.batch_size"), std::string::npos);

  options_.batch_size = 8;
  options_.monitor = "accuracy";
  result = Trainer(MakeTinyNetwork(), options_).Run(data_);
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(result.status().message()).find("dice"), std::string::npos)
      << "the message lists the metrics to choose from: " << result.status().message();

  options_.monitor = "dice";
  data_.val.images = torch::Tensor();
  data_.val.targets = torch::Tensor();
  result = Trainer(MakeTinyNetwork(), options_).Run(data_);
  EXPECT_NE(std::string(result.status().message()).find("validation set is empty"),
            std::string::npos);
}

TEST_F(TrainerTest, TorchErrorsBecomeStatusesNotExceptions) {
  // Two output channels for a binary task: the loss cannot match them to the masks.
  Trainer trainer(MakeTinyNetwork(/*out_channels=*/2), options_);
  StatusOr<TrainResult> result;
  EXPECT_NO_THROW(result = trainer.Run(data_));
  EXPECT_FALSE(result.ok());
}

TEST_F(TrainerTest, EvaluationIsDeterministicInEvalMode) {
  Trainer trainer(MakeTinyNetwork(), options_);
  auto a = trainer.Evaluate(data_.val);
  auto b = trainer.Evaluate(data_.val);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_DOUBLE_EQ(a->first, b->first);  // dropout off, BatchNorm statistics fixed
}

// The tiny network, recording what its forward pass computed in: the input's layout, whether
// autocast was on, and the logits' type.
class FormatRecordingNetwork : public testing::TinyNetworkImpl {
 public:
  torch::Tensor forward(torch::Tensor images) override {
    channels_last_inputs += images.is_contiguous(torch::MemoryFormat::ChannelsLast) ? 1 : 0;
    torch::Tensor logits = TinyNetworkImpl::forward(images);
    logit_types.insert(logits.scalar_type());
    ++calls;
    return logits;
  }
  int calls = 0;
  int channels_last_inputs = 0;
  std::set<c10::ScalarType> logit_types;
};

// bfloat16 autocast and channels-last change how the network computes, not what it learns: every
// forward pass (training, validation) runs in bfloat16 on NHWC input, the run learns the squares,
// the weights and the checkpoint stay float32, and best.pt reloaded into a plain float32 network
// scores what the run recorded, to bfloat16's rounding.
TEST_F(TrainerTest, Bf16AutocastAndChannelsLastLearnWithFloat32Weights) {
  options_.precision = Precision::kBFloat16;
  options_.channels_last = true;
  torch::manual_seed(7);
  auto network = std::make_shared<FormatRecordingNetwork>();
  Trainer trainer(network, options_);
  StatusOr<TrainResult> result = trainer.Run(data_);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_GT(network->calls, 4 * 6);
  EXPECT_EQ(network->channels_last_inputs, network->calls);
  EXPECT_EQ(network->logit_types, (std::set<c10::ScalarType>{torch::kBFloat16}));
  EXPECT_LT(result->history.back().train_loss, result->history.front().train_loss);
  EXPECT_GT(result->history.back().val_metrics.at("dice"), 0.5);
  for (const auto& item : network->named_parameters()) {
    EXPECT_EQ(item.value().scalar_type(), torch::kFloat) << item.key();
    if (item.value().dim() == 4) {
      EXPECT_TRUE(item.value().is_contiguous(torch::MemoryFormat::ChannelsLast)) << item.key();
    }
  }

  models::Network reloaded = MakeTinyNetwork();
  ASSERT_TRUE(LoadCheckpoint((dir_ / "best.pt").string(), *reloaded).ok());
  TrainerOptions float32 = options_;
  float32.precision = Precision::kFloat32;
  float32.channels_last = false;
  auto evaluation = Trainer(reloaded, float32).Evaluate(data_.val);
  ASSERT_TRUE(evaluation.ok()) << evaluation.status();
  EXPECT_NEAR(evaluation->second.at("dice"), result->best_value, 0.02);
}

// The tiny network, recording the input sizes it was given.
class SizeRecordingNetwork : public testing::TinyNetworkImpl {
 public:
  torch::Tensor forward(torch::Tensor images) override {
    sizes.insert({images.size(2), images.size(3)});
    return TinyNetworkImpl::forward(images);
  }
  std::set<std::pair<int64_t, int64_t>> sizes;
};

// The fixture's data are stored at 16x16; with input_size 32 training, validation, the
// transform and Evaluate all see 32x32 (and the masks, resized alike, fit the logits).
TEST_F(TrainerTest, InputSizeResizesEveryBatchOnTheDevice) {
  options_.epochs = 2;
  options_.input_size = 32;
  auto transform_sizes = std::make_shared<std::set<std::pair<int64_t, int64_t>>>();
  options_.train_transform = [transform_sizes](Batch& batch, uint64_t) {
    transform_sizes->insert({batch.images.size(2), batch.targets.size(2)});
  };
  torch::manual_seed(7);
  auto network = std::make_shared<SizeRecordingNetwork>();
  Trainer trainer(network, options_);
  StatusOr<TrainResult> result = trainer.Run(data_);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->history.size(), 2u);
  EXPECT_LT(result->history.back().train_loss, result->history.front().train_loss);
  const std::set<std::pair<int64_t, int64_t>> only_32 = {{32, 32}};
  EXPECT_EQ(network->sizes, only_32);
  EXPECT_EQ(*transform_sizes, only_32);  // images and masks alike

  network->sizes.clear();
  auto evaluation = trainer.Evaluate(data_.val);
  ASSERT_TRUE(evaluation.ok()) << evaluation.status();
  EXPECT_EQ(network->sizes, only_32);
  EXPECT_TRUE(std::isfinite(evaluation->first));
  EXPECT_GT(evaluation->second.at("dice"), 0.0);

  options_.input_size = -1;
  StatusOr<TrainResult> bad = Trainer(MakeTinyNetwork(), options_).Run(data_);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(bad.status().message()).find("training.input_size: -1"), std::string::npos)
      << bad.status().message();
}

}  // namespace
}  // namespace selene::train
