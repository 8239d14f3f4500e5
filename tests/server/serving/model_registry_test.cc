// Tests server/serving/model_registry.h on tiny models written as job folders: loading on first
// use, the LRU bound, aliases, the catalog's refusals passed through, jobs that appear later,
// concurrent first use loading once, ListModels, and broken checkpoints.
#include "server/serving/model_registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

#include "tests/server/serving/serving_test_models.h"

namespace selene::serving {
namespace {

using ::testing::ElementsAre;
using testing::FakeCatalog;
using ::testing::HasSubstr;
using testing::MakeJob;
using testing::TinyBinarySpec;
using testing::TinyClassifierSpec;
using testing::TinyMultiClassSpec;

ModelRegistryOptions Options(int max_loaded) {
  ModelRegistryOptions options;
  options.max_loaded_models = max_loaded;
  options.batcher.max_batch_size = 1;
  return options;
}

cv::Mat ModelInput(int channels = 3) {
  return cv::Mat(32, 32, channels == 3 ? CV_8UC3 : CV_8UC1, cv::Scalar::all(100));
}

TEST(ModelRegistryTest, LoadsOnFirstUseAndServesFromTheCacheAfterwards) {
  FakeCatalog catalog;
  catalog.Add(MakeJob("job-1", TinyBinarySpec(), 1));
  ModelRegistry registry(&catalog, Options(4));
  EXPECT_EQ(registry.load_count(), 0);
  EXPECT_TRUE(registry.LoadedJobIds().empty());

  StatusOr<std::shared_ptr<ServableModel>> model = registry.Get("job-1");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->job_id(), "job-1");
  EXPECT_EQ((*model)->task(), v1::TASK_BINARY_SEGMENTATION);
  EXPECT_EQ((*model)->description().input_size, 32);
  EXPECT_EQ((*model)->description().class_names, std::vector<std::string>{"foreground"});
  EXPECT_GT((*model)->parameters(), 0);
  StatusOr<ModelOutput> out = (*model)->Infer(ModelInput());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->shape, (std::vector<int64_t>{1, 32, 32}));

  const int finds = catalog.find_calls();
  StatusOr<std::shared_ptr<ServableModel>> again = registry.Get("job-1");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->get(), model->get());
  EXPECT_EQ(registry.load_count(), 1);
  EXPECT_EQ(catalog.find_calls(), finds);  // a hit does not ask the catalog
}

// --inference_precision bf16: the registry's model options reach every loaded model. The
// logits are float32 either way, close to the fp32 model's, and not identical to them (they
// would be if the option were dropped on the way).
TEST(ModelRegistryTest, ServesInBfloat16WhenTheModelOptionsSaySo) {
  FakeCatalog catalog;
  catalog.Add(MakeJob("job-1", TinyBinarySpec(), 1));
  ModelRegistry fp32(&catalog, Options(4));
  ModelRegistryOptions bf16_options = Options(4);
  bf16_options.model.bfloat16 = true;
  ModelRegistry bf16(&catalog, bf16_options);

  cv::Mat image(32, 32, CV_8UC3);
  cv::randu(image, cv::Scalar::all(0), cv::Scalar::all(256));
  StatusOr<std::shared_ptr<ServableModel>> a = fp32.Get("job-1");
  StatusOr<std::shared_ptr<ServableModel>> b = bf16.Get("job-1");
  ASSERT_TRUE(a.ok() && b.ok());
  StatusOr<ModelOutput> reference = (*a)->Infer(image);
  StatusOr<ModelOutput> rounded = (*b)->Infer(image);
  ASSERT_TRUE(reference.ok() && rounded.ok());
  ASSERT_EQ(rounded->shape, reference->shape);
  double largest = 0, worst = 0;
  for (size_t i = 0; i < reference->values.size(); ++i) {
    largest = std::max(largest, std::abs(double{reference->values[i]}));
    worst = std::max(worst, std::abs(double{rounded->values[i]} - reference->values[i]));
  }
  EXPECT_GT(worst, 0.0);
  EXPECT_LT(worst, 0.05 * std::max(1.0, largest));
}

TEST(ModelRegistryTest, EvictsTheLeastRecentlyUsedModelAtTheBound) {
  FakeCatalog catalog;
  for (int i = 1; i <= 3; ++i) {
    catalog.Add(MakeJob("job-" + std::to_string(i), TinyBinarySpec(), i, {}, i));
  }
  ModelRegistry registry(&catalog, Options(2));
  ASSERT_TRUE(registry.Get("job-1").ok());
  StatusOr<std::shared_ptr<ServableModel>> held = registry.Get("job-2");
  ASSERT_TRUE(held.ok());
  ASSERT_TRUE(registry.Get("job-1").ok());  // job-2 is now the least recently used
  ASSERT_TRUE(registry.Get("job-3").ok());
  EXPECT_THAT(registry.LoadedJobIds(), ElementsAre("job-3", "job-1"));
  EXPECT_EQ(registry.load_count(), 3);

  // An evicted model stays usable by whoever holds it.
  StatusOr<ModelOutput> out = (*held)->Infer(ModelInput());
  EXPECT_TRUE(out.ok()) << out.status();

  ASSERT_TRUE(registry.Get("job-2").ok());  // loads again, evicting job-1
  EXPECT_EQ(registry.load_count(), 4);
  EXPECT_THAT(registry.LoadedJobIds(), ElementsAre("job-2", "job-3"));
}

TEST(ModelRegistryTest, AliasesPickTheNewestSucceededJobOverallAndPerTask) {
  FakeCatalog catalog;
  catalog.Add(MakeJob("job-1", TinyBinarySpec(), 1));
  catalog.Add(MakeJob("job-2", TinyClassifierSpec(), 4));
  catalog.Add(MakeJob("job-3", TinyMultiClassSpec(), 3));
  catalog.Add(MakeJob("job-4", TinyBinarySpec(), 2));
  ModelRegistry registry(&catalog, Options(4));
  auto job_of = [&](const std::string& name) -> std::string {
    StatusOr<std::shared_ptr<ServableModel>> model = registry.Get(name);
    return model.ok() ? (*model)->job_id() : model.status().ToString();
  };
  EXPECT_EQ(job_of("latest"), "job-2");
  EXPECT_EQ(job_of("latest:binary_segmentation"), "job-4");
  EXPECT_EQ(job_of("latest:multiclass_segmentation"), "job-3");
  EXPECT_EQ(job_of("latest:classification"), "job-2");
  EXPECT_EQ(job_of("latest:TASK_CLASSIFICATION"), "job-2");

  StatusOr<std::shared_ptr<ServableModel>> bad = registry.Get("latest:regression");
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("unknown task \"regression\""));

  // A newer job answers to the alias as soon as the catalog has it.
  catalog.Add(MakeJob("job-5", TinyBinarySpec(), 5));
  EXPECT_EQ(job_of("latest"), "job-5");
  EXPECT_EQ(job_of("latest:binary_segmentation"), "job-5");
}

TEST(ModelRegistryTest, AliasWithNothingServableIsNotFound) {
  FakeCatalog catalog;
  ModelRegistry registry(&catalog, Options(4));
  StatusOr<std::shared_ptr<ServableModel>> latest = registry.Get("latest");
  EXPECT_EQ(latest.status().code(), StatusCode::kNotFound);
  catalog.Add(MakeJob("job-1", TinyBinarySpec(), 1));
  StatusOr<std::shared_ptr<ServableModel>> classifier = registry.Get("latest:classification");
  EXPECT_EQ(classifier.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(classifier.status().message(), HasSubstr("no classification job has succeeded"));
  EXPECT_EQ(registry.Get("").status().code(), StatusCode::kInvalidArgument);
}

TEST(ModelRegistryTest, PassesTheCatalogsRefusalsThroughAndServesJobsThatSucceedLater) {
  FakeCatalog catalog;
  catalog.AddUnfinished("job-3", "RUNNING");
  ModelRegistry registry(&catalog, Options(4));

  StatusOr<std::shared_ptr<ServableModel>> unknown = registry.Get("job-9");
  EXPECT_EQ(unknown.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(unknown.status().message(), HasSubstr("job-9"));

  StatusOr<std::shared_ptr<ServableModel>> running = registry.Get("job-3");
  EXPECT_EQ(running.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(running.status().message(), "job-3 is RUNNING; its model is servable once it succeeds");

  // The job succeeds while the registry runs: the next request loads it, no restart.
  catalog.Add(MakeJob("job-3", TinyBinarySpec(), 1));
  StatusOr<std::shared_ptr<ServableModel>> done = registry.Get("job-3");
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ((*done)->job_id(), "job-3");
}

TEST(ModelRegistryTest, ConcurrentFirstUsesLoadTheModelOnce) {
  FakeCatalog catalog;
  catalog.Add(MakeJob("job-1", TinyBinarySpec(), 1));
  catalog.SetFindDelay(absl::Milliseconds(50));  // every caller arrives during the load
  ModelRegistry registry(&catalog, Options(4));
  std::vector<std::shared_ptr<ServableModel>> got(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      StatusOr<std::shared_ptr<ServableModel>> model = registry.Get("job-1");
      if (model.ok()) got[i] = *model;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(registry.load_count(), 1);
  EXPECT_EQ(catalog.find_calls(), 1);
  for (const auto& model : got) {
    ASSERT_NE(model, nullptr);
    EXPECT_EQ(model.get(), got[0].get());
  }
}

TEST(ModelRegistryTest, ABrokenCheckpointIsInternalNamingTheJobAndPathAndIsRetried) {
  FakeCatalog catalog;
  ServableModelRecord record = MakeJob("job-6", TinyBinarySpec(), 1);
  std::ofstream(record.checkpoint_path, std::ios::trunc) << "not a checkpoint";
  catalog.Add(record);
  ModelRegistry registry(&catalog, Options(4));
  StatusOr<std::shared_ptr<ServableModel>> broken = registry.Get("job-6");
  EXPECT_EQ(broken.status().code(), StatusCode::kInternal);
  EXPECT_THAT(broken.status().message(), HasSubstr("model job-6"));
  EXPECT_THAT(broken.status().message(), HasSubstr(record.checkpoint_path));
  EXPECT_TRUE(registry.LoadedJobIds().empty());

  catalog.Add(MakeJob("job-6", TinyBinarySpec(), 1));  // repaired: the failure was not cached
  EXPECT_TRUE(registry.Get("job-6").ok());
}

TEST(ModelRegistryTest, ReadsTheSpecFromTheCheckpointWhenTheRecordHasNone) {
  FakeCatalog catalog;
  ServableModelRecord record = MakeJob("job-2", TinyMultiClassSpec(), 1);
  const int64_t classes = 4;  // 3 shapes + background
  record.spec = v1::JobSpec();
  catalog.Add(record);
  ModelRegistry registry(&catalog, Options(4));
  StatusOr<std::shared_ptr<ServableModel>> model = registry.Get("job-2");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->task(), v1::TASK_MULTICLASS_SEGMENTATION);
  EXPECT_EQ((*model)->description().num_outputs, classes);
  EXPECT_EQ((*model)->description().normalize_mean, (std::vector<double>{0.4, 0.5, 0.6}));
}

TEST(ModelRegistryTest, ListModelsDescribesEveryServableModelNewestFirst) {
  FakeCatalog catalog;
  catalog.Add(MakeJob("job-1", TinyBinarySpec(), 1));
  catalog.Add(MakeJob("job-2", TinyClassifierSpec(), 3, {"disc", "square", "triangle", "star"}));
  ServableModelRecord multi = MakeJob("job-3", TinyMultiClassSpec(), 2, {"too", "few"});
  multi.monitor = "mean_dice";
  multi.best_value = 0.75;
  catalog.Add(multi);
  ModelRegistry registry(&catalog, Options(4));
  StatusOr<std::shared_ptr<ServableModel>> loaded = registry.Get("job-2");
  ASSERT_TRUE(loaded.ok()) << loaded.status();

  StatusOr<std::vector<v1::ModelInfo>> all = registry.ListModels();
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 3u);
  const v1::ModelInfo& classifier = (*all)[0];
  const v1::ModelInfo& multiclass = (*all)[1];
  const v1::ModelInfo& binary = (*all)[2];
  EXPECT_EQ(classifier.job_id(), "job-2");
  EXPECT_EQ(multiclass.job_id(), "job-3");
  EXPECT_EQ(binary.job_id(), "job-1");

  EXPECT_EQ(classifier.name(), "tiny-classifier");
  EXPECT_EQ(classifier.task(), v1::TASK_CLASSIFICATION);
  EXPECT_THAT(classifier.class_names(), ElementsAre("disc", "square", "triangle", "star"));
  EXPECT_EQ(classifier.model_family(), "classifier");
  EXPECT_EQ(classifier.input_size(), 32);
  EXPECT_EQ(classifier.in_channels(), 3);
  EXPECT_EQ(classifier.parameters(), (*loaded)->parameters());
  EXPECT_THAT(classifier.aliases(), ElementsAre("latest", "latest:classification"));
  EXPECT_TRUE(classifier.loaded());
  EXPECT_EQ(classifier.monitor(), "top1");  // the spec's, as the record has none

  // class_names.txt with the wrong count is ignored.
  EXPECT_THAT(multiclass.class_names(), ElementsAre("class_0", "class_1", "class_2", "class_3"));
  EXPECT_THAT(multiclass.aliases(), ElementsAre("latest:multiclass_segmentation"));
  EXPECT_FALSE(multiclass.loaded());
  EXPECT_EQ(multiclass.model_family(), "unet");
  EXPECT_GT(multiclass.parameters(), 0);
  EXPECT_EQ(multiclass.monitor(), "mean_dice");
  EXPECT_DOUBLE_EQ(multiclass.best_value(), 0.75);

  EXPECT_THAT(binary.class_names(), ElementsAre("foreground"));
  EXPECT_THAT(binary.aliases(), ElementsAre("latest:binary_segmentation"));

  // The count of an unloaded model matches the loaded network's.
  StatusOr<std::shared_ptr<ServableModel>> multi_loaded = registry.Get("job-3");
  ASSERT_TRUE(multi_loaded.ok());
  EXPECT_EQ(multiclass.parameters(), (*multi_loaded)->parameters());

  StatusOr<std::vector<v1::ModelInfo>> binaries = registry.ListModels(v1::TASK_BINARY_SEGMENTATION);
  ASSERT_TRUE(binaries.ok());
  ASSERT_EQ(binaries->size(), 1u);
  EXPECT_EQ((*binaries)[0].job_id(), "job-1");
}

TEST(TaskAliasNameTest, RoundTripsEveryTask) {
  for (v1::Task task :
       {v1::TASK_CLASSIFICATION, v1::TASK_BINARY_SEGMENTATION, v1::TASK_MULTICLASS_SEGMENTATION}) {
    StatusOr<v1::Task> parsed = ParseTaskAliasName(TaskAliasName(task));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, task);
  }
  EXPECT_FALSE(ParseTaskAliasName("unspecified").ok());
}

}  // namespace
}  // namespace selene::serving
