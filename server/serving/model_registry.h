// The model registry: turns a model name (a job id, "latest" or "latest:<task>") into a loaded,
// servable model, loading it on first use and keeping at most max_loaded_models in memory
// (least recently used evicted first). It asks the ModelCatalog on every miss, so jobs that
// succeed later become servable without a restart. Concurrent first uses of one model load it
// once; the others wait for that load.
#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"
#include "selene/v1/inference_service.pb.h"
#include "selene/v1/job_spec.pb.h"
#include "server/serving/dynamic_batcher.h"
#include "server/serving/model_catalog.h"
#include "server/serving/servable_model.h"

namespace selene::serving {

// "classification", "binary_segmentation", "multiclass_segmentation" ("unspecified" for 0).
std::string TaskAliasName(v1::Task task);
// The inverse, any case, with or without the "task_" prefix; InvalidArgument listing the names.
StatusOr<v1::Task> ParseTaskAliasName(absl::string_view name);

struct ModelRegistryOptions {
  int max_loaded_models = 4;      // at least 1
  DynamicBatcherOptions batcher;  // each loaded model's batcher (its name is set per model)
  ServableModelOptions model;     // how each loaded network is prepared
};

class ModelRegistry {
 public:
  // `catalog` must outlive the registry.
  ModelRegistry(ModelCatalog* catalog, ModelRegistryOptions options);
  ModelRegistry(const ModelRegistry&) = delete;
  ModelRegistry& operator=(const ModelRegistry&) = delete;

  // The model `name` denotes, loaded. NotFound for an unknown job or an alias nothing answers
  // to; FailedPrecondition (from the catalog) for a job that has not succeeded; InvalidArgument
  // for an empty name or an unknown task in "latest:<task>"; Internal when loading fails. The
  // model stays usable by the caller after an eviction (it is dropped when the last user lets
  // go).
  StatusOr<std::shared_ptr<ServableModel>> Get(const std::string& name);

  // The record `name` denotes, without loading it.
  StatusOr<ServableModelRecord> Resolve(const std::string& name);

  // Every servable model (of `task`; UNSPECIFIED = all), newest job first, loaded or not.
  StatusOr<std::vector<v1::ModelInfo>> ListModels(v1::Task task = v1::TASK_UNSPECIFIED);

  // Job ids of the loaded models, most recently used first.
  std::vector<std::string> LoadedJobIds() const;
  // Completed successful loads since start (a reloaded model counts again).
  int64_t load_count() const;

 private:
  struct Entry;

  StatusOr<std::shared_ptr<ServableModel>> GetJob(const std::string& job_id,
                                                  const ServableModelRecord* known_record);

  ModelCatalog* const catalog_;
  const ModelRegistryOptions options_;

  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);
  std::list<std::string> lru_ ABSL_GUARDED_BY(mu_);  // loaded job ids, most recent first
  std::map<std::string, int64_t> parameter_counts_ ABSL_GUARDED_BY(mu_);  // for ListModels
  int64_t load_count_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace selene::serving
