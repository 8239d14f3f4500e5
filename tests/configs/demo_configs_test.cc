// Convergence on CPU: each synthetic demo config, run exactly as `selene-train` runs it, reaches
// its goal on the monitored validation metric. These are the slowest tests (about a minute each
// on 2 cores) and the ones that prove the engine learns.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "server/jobs/training_data.h"
#include "server/jobs/training_plan.h"
#include "server/train/threads.h"
#include "spec/json_io.h"
#include "spec/network_builder.h"

namespace selene::jobs {
namespace {

struct DemoGoal {
  std::string config;
  std::string metric;
  double goal;
};

class DemoConfigsTest : public ::testing::TestWithParam<DemoGoal> {};

TEST_P(DemoConfigsTest, ReachesItsGoal) {
  const DemoGoal& demo = GetParam();
  train::ConfigureTorchThreads();
  StatusOr<v1::JobSpec> spec =
      spec::LoadJobSpecFile(std::string(SELENE_CONFIGS_DIR) + "/" + demo.config);
  ASSERT_TRUE(spec.ok()) << spec.status();
  StatusOr<spec::ResolvedJobSpec> resolved = spec::ResolvedJobSpec::Resolve(*spec);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  StatusOr<TrainingPlan> plan = PlanTraining(*resolved);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->trainer.monitor, demo.metric);
  StatusOr<models::Network> network = spec::BuildNetwork(plan->spec);
  ASSERT_TRUE(network.ok()) << network.status();
  StatusOr<TrainingData> data = LoadTrainingData(plan->spec.data(), "");
  ASSERT_TRUE(data.ok()) << data.status();

  const auto start = std::chrono::steady_clock::now();
  train::Trainer trainer(*network, plan->trainer);
  StatusOr<train::TrainResult> result = trainer.Run(data->split);
  ASSERT_TRUE(result.ok()) << result.status();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (const train::EpochRecord& r : result->history) {
    std::printf("  epoch %lld: train loss %.4f, val loss %.4f, %s %.4f, %.0f images/s\n",
                static_cast<long long>(r.epoch + 1), r.train_loss, r.val_loss, demo.metric.c_str(),
                r.val_metrics.at(demo.metric), r.images_per_second);
  }
  std::printf("%s: best %s %.4f at epoch %lld in %.1f s\n", demo.config.c_str(),
              demo.metric.c_str(), result->best_value,
              static_cast<long long>(result->best_epoch + 1), seconds);
  EXPECT_GE(result->best_value, demo.goal);
}

INSTANTIATE_TEST_SUITE_P(Demos, DemoConfigsTest,
                         ::testing::Values(DemoGoal{"demo_moon_unet.json", "dice", 0.80},
                                           DemoGoal{"demo_shapes_classifier.json", "top1", 0.90}),
                         [](const auto& info) {
                           std::string name =
                               info.param.config.substr(0, info.param.config.find('.'));
                           return name;
                         });

}  // namespace
}  // namespace selene::jobs
