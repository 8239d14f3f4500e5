#include "server/train/checkpoint.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "models/seeded_randomness.h"
#include "server/train/optimization.h"
#include "tests/server/train/tiny_network.h"
#include "tests/testing/files.h"

namespace selene::train {
namespace {

using testing::MakeTinyNetwork;

class CheckpointTest : public ::testing::Test {
 protected:
  std::string Path(const std::string& name) const { return dir_ / name; }

  ::selene::testing::TempDir dir_{"selene-checkpoint-test"};
};

TEST_F(CheckpointTest, RoundTripGivesIdenticalOutputs) {
  models::Network saved = MakeTinyNetwork();
  // Train-mode forward passes move BatchNorm's running statistics away from their defaults.
  saved->train();
  for (int i = 0; i < 3; ++i) saved->forward(torch::randn({4, 3, 8, 8}));
  ASSERT_TRUE(SaveCheckpoint(Path("a.pt"), *saved, "{\"name\": \"tiny\"}").ok());

  torch::manual_seed(99);  // a differently initialised copy
  models::Network loaded = std::make_shared<testing::TinyNetworkImpl>();
  ASSERT_TRUE(LoadCheckpoint(Path("a.pt"), *loaded).ok());
  saved->eval();
  loaded->eval();
  torch::Tensor input = torch::randn({2, 3, 8, 8});
  EXPECT_TRUE(torch::equal(saved->forward(input), loaded->forward(input)));

  StatusOr<std::string> metadata = ReadCheckpointMetadata(Path("a.pt"));
  ASSERT_TRUE(metadata.ok());
  EXPECT_EQ(*metadata, "{\"name\": \"tiny\"}");
}

TEST_F(CheckpointTest, ArchitectureMismatchNamesTheTensor) {
  models::Network narrow = MakeTinyNetwork(1, 4);
  ASSERT_TRUE(SaveCheckpoint(Path("narrow.pt"), *narrow, "").ok());
  models::Network wide = MakeTinyNetwork(1, 8);
  Status status = LoadCheckpoint(Path("narrow.pt"), *wide);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(status.message()).find("conv.weight"), std::string::npos)
      << status.message();
  EXPECT_NE(std::string(status.message()).find("[4, 3, 3, 3]"), std::string::npos)
      << status.message();
}

TEST_F(CheckpointTest, MissingAndCorruptFilesAreErrorsNotCrashes) {
  models::Network network = MakeTinyNetwork();
  Status missing = LoadCheckpoint(Path("nope.pt"), *network);
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
  EXPECT_NE(std::string(missing.message()).find("nope.pt"), std::string::npos);

  std::ofstream(Path("garbage.pt")) << "this is not a checkpoint";
  Status corrupt = LoadCheckpoint(Path("garbage.pt"), *network);
  EXPECT_EQ(corrupt.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(corrupt.message()).find("garbage.pt"), std::string::npos);
}

TEST_F(CheckpointTest, TrainingStateAndOptimizerRoundTrip) {
  models::Network network = MakeTinyNetwork();
  OptimizerOptions options;
  auto optimizer = MakeOptimizer(options, network->parameter_groups());
  optimizer->zero_grad();
  network->forward(torch::randn({2, 3, 8, 8})).sum().backward();
  optimizer->step();

  TrainingState state;
  state.next_epoch = 3;
  state.next_step = 2;
  state.best_epoch = 1;
  state.best_value = 0.875;
  state.epochs_without_improvement = 1;
  state.schedule_state = {0.5, 0.9, 1.0, 2.0};
  EpochRecord record;
  record.epoch = 1;
  record.train_loss = 0.25;
  record.val_metrics = {{"dice", 0.875}, {"f1/goldfish, carp", 0.5}};
  state.history = {record};
  ASSERT_TRUE(SaveCheckpoint(Path("last.pt"), *network, "", optimizer.get(), &state).ok());

  models::Network restored = MakeTinyNetwork();
  auto restored_optimizer = MakeOptimizer(options, restored->parameter_groups());
  TrainingState restored_state;
  ASSERT_TRUE(
      LoadCheckpoint(Path("last.pt"), *restored, restored_optimizer.get(), &restored_state).ok());
  EXPECT_EQ(restored_state.next_epoch, 3);
  EXPECT_EQ(restored_state.next_step, 2);
  EXPECT_EQ(restored_state.best_epoch, 1);
  EXPECT_DOUBLE_EQ(restored_state.best_value, 0.875);
  EXPECT_EQ(restored_state.epochs_without_improvement, 1);
  EXPECT_EQ(restored_state.schedule_state, state.schedule_state);
  ASSERT_EQ(restored_state.history.size(), 1u);
  EXPECT_DOUBLE_EQ(restored_state.history[0].train_loss, 0.25);
  EXPECT_DOUBLE_EQ(restored_state.history[0].val_metrics.at("f1/goldfish, carp"), 0.5);

  // Same optimizer state: the next step from either copy lands on the same weights.
  for (auto* pair : {&network, &restored}) {
    auto& opt = pair == &network ? optimizer : restored_optimizer;
    opt->zero_grad();
    models::SeedThreadGenerator(11);  // the same dropout masks, as the trainer seeds each step
    (*pair)->forward(torch::ones({2, 3, 8, 8})).sum().backward();
    opt->step();
  }
  auto a = network->parameters(), b = restored->parameters();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << i;
}

TEST_F(CheckpointTest, ModuleWeightsLoadFromAPrefix) {
  models::Network network = MakeTinyNetwork(1, 4);
  ASSERT_TRUE(SaveCheckpoint(Path("w.pt"), *network, "").ok());
  torch::nn::BatchNorm2d norm(4);
  ASSERT_TRUE(LoadModuleWeights(Path("w.pt"), *norm, "norm").ok());
  auto source = network->named_parameters();
  EXPECT_TRUE(torch::equal(norm->weight, source["norm.weight"]));
  Status bad_prefix = LoadModuleWeights(Path("w.pt"), *norm, "encoder");
  EXPECT_EQ(bad_prefix.code(), StatusCode::kNotFound);
  EXPECT_NE(std::string(bad_prefix.message()).find("encoder"), std::string::npos);
}

}  // namespace
}  // namespace selene::train
