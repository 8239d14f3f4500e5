#include "server/serving/model_registry.h"

#include <algorithm>
#include <exception>
#include <future>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/text_limits.h"
#include "models/factory.h"

namespace selene::serving {
namespace {

constexpr absl::string_view kLatest = "latest";
constexpr v1::Task kServableTasks[] = {v1::TASK_CLASSIFICATION, v1::TASK_BINARY_SEGMENTATION,
                                       v1::TASK_MULTICLASS_SEGMENTATION};

bool IsAlias(absl::string_view name) {
  return name == kLatest || absl::StartsWith(name, absl::StrCat(kLatest, ":"));
}

// Newest first; ties (equal finish order) by job id so the choice is stable.
bool Newer(const ServableModelRecord& a, const ServableModelRecord& b) {
  if (a.finish_order != b.finish_order) return a.finish_order > b.finish_order;
  return a.job_id > b.job_id;
}

// A record's task without loading anything: its spec's, else the checkpoint metadata's (slow
// path, only for catalogs that do not know the spec).
v1::Task RecordTask(const ServableModelRecord& record) {
  if (record.spec.task() != v1::TASK_UNSPECIFIED) return record.spec.task();
  StatusOr<ModelDescription> description = DescribeModel(record);
  return description.ok() ? description->task : v1::TASK_UNSPECIFIED;
}

StatusOr<std::vector<ServableModelRecord>> ListFromCatalog(ModelCatalog* catalog) {
  try {
    return catalog->ListServable();
  } catch (const std::exception& e) {
    return InternalError(absl::StrCat("model catalog: listing servable models failed: ", e.what()));
  }
}

}  // namespace

std::string TaskAliasName(v1::Task task) {
  switch (task) {
    case v1::TASK_CLASSIFICATION:
      return "classification";
    case v1::TASK_BINARY_SEGMENTATION:
      return "binary_segmentation";
    case v1::TASK_MULTICLASS_SEGMENTATION:
      return "multiclass_segmentation";
    default:
      return "unspecified";
  }
}

StatusOr<v1::Task> ParseTaskAliasName(absl::string_view name) {
  std::string lower = absl::AsciiStrToLower(name);
  if (absl::StartsWith(lower, "task_")) lower = lower.substr(5);
  for (v1::Task task : kServableTasks) {
    if (lower == TaskAliasName(task)) return task;
  }
  return InvalidArgumentError(
      absl::StrCat("unknown task \"", ForMessage(name),
                   "\" (classification, binary_segmentation, multiclass_segmentation)"));
}

struct ModelRegistry::Entry {
  // Set by the loading caller; waiters for the same job share it.
  std::shared_future<StatusOr<std::shared_ptr<ServableModel>>> loaded;
  std::shared_ptr<ServableModel> model;  // non-null once loaded
  std::list<std::string>::iterator lru_position;
};

ModelRegistry::ModelRegistry(ModelCatalog* catalog, ModelRegistryOptions options)
    : catalog_(catalog), options_([&options] {
        options.max_loaded_models = std::max(1, options.max_loaded_models);
        return std::move(options);
      }()) {}

StatusOr<ServableModelRecord> ModelRegistry::Resolve(const std::string& name) {
  if (name.empty()) {
    return InvalidArgumentError("model: empty; name a job id or an alias (latest, latest:<task>)");
  }
  if (!IsAlias(name)) {
    try {
      return catalog_->Find(name);
    } catch (const std::exception& e) {
      return InternalError(
          absl::StrCat("model catalog: finding ", ForMessage(name), " failed: ", e.what()));
    }
  }
  v1::Task task = v1::TASK_UNSPECIFIED;
  if (name != kLatest) {
    StatusOr<v1::Task> parsed = ParseTaskAliasName(name.substr(kLatest.size() + 1));
    if (!parsed.ok()) {
      return InvalidArgumentError(
          absl::StrCat("model \"", ForMessage(name), "\": ", parsed.status().message()));
    }
    task = *parsed;
  }
  SELENE_ASSIGN_OR_RETURN(std::vector<ServableModelRecord> records, ListFromCatalog(catalog_));
  const ServableModelRecord* newest = nullptr;
  for (const ServableModelRecord& record : records) {
    if (task != v1::TASK_UNSPECIFIED && RecordTask(record) != task) continue;
    if (newest == nullptr || Newer(record, *newest)) newest = &record;
  }
  if (newest == nullptr) {
    return NotFoundError(task == v1::TASK_UNSPECIFIED
                             ? absl::StrCat("model \"", ForMessage(name),
                                            "\": no job has succeeded yet, so no model is servable")
                             : absl::StrCat("model \"", ForMessage(name), "\": no ",
                                            TaskAliasName(task), " job has succeeded yet"));
  }
  return *newest;
}

StatusOr<std::shared_ptr<ServableModel>> ModelRegistry::Get(const std::string& name) {
  if (name.empty() || IsAlias(name)) {
    SELENE_ASSIGN_OR_RETURN(ServableModelRecord record, Resolve(name));
    return GetJob(record.job_id, &record);
  }
  return GetJob(name, nullptr);
}

StatusOr<std::shared_ptr<ServableModel>> ModelRegistry::GetJob(
    const std::string& job_id, const ServableModelRecord* known_record) {
  using Result = StatusOr<std::shared_ptr<ServableModel>>;
  std::promise<Result> promise;
  std::shared_ptr<Entry> entry;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(job_id);
    if (it != entries_.end()) {
      entry = it->second;
      if (entry->model != nullptr) {
        lru_.splice(lru_.begin(), lru_, entry->lru_position);
        return entry->model;
      }
    } else {
      entry = std::make_shared<Entry>();
      entry->loaded = promise.get_future().share();
      entries_.emplace(job_id, entry);
      entry = nullptr;  // this caller loads
    }
  }
  if (entry != nullptr) return entry->loaded.get();  // another caller is loading it

  // Loading happens outside the lock: other models keep being served meanwhile.
  Result result = [&]() -> Result {
    ServableModelRecord record;
    if (known_record != nullptr) {
      record = *known_record;
    } else {
      StatusOr<ServableModelRecord> found = Resolve(job_id);
      if (!found.ok()) return found.status();
      record = *std::move(found);
    }
    if (record.check_files) SELENE_RETURN_IF_ERROR(record.check_files());
    try {
      return ServableModel::Load(record, options_.batcher, options_.model);
    } catch (const std::exception& e) {  // e.g. the batcher's thread could not start
      return InternalError(absl::StrCat("model ", job_id, ": loading failed: ", e.what()));
    }
  }();

  std::vector<std::shared_ptr<ServableModel>> evicted;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(job_id);
    if (result.ok()) {
      it->second->model = *result;
      lru_.push_front(job_id);
      it->second->lru_position = lru_.begin();
      parameter_counts_[job_id] = (*result)->parameters();
      ++load_count_;
      while (static_cast<int>(lru_.size()) > options_.max_loaded_models) {
        const std::string oldest = lru_.back();
        lru_.pop_back();
        evicted.push_back(entries_[oldest]->model);
        entries_.erase(oldest);
      }
    } else {
      entries_.erase(it);  // a later call tries again
    }
  }
  promise.set_value(result);
  // Dropped outside the lock: the last reference stops the model's batcher and joins its thread.
  evicted.clear();
  return result;
}

StatusOr<std::vector<v1::ModelInfo>> ModelRegistry::ListModels(v1::Task task) {
  SELENE_ASSIGN_OR_RETURN(std::vector<ServableModelRecord> records, ListFromCatalog(catalog_));
  std::sort(records.begin(), records.end(), Newer);

  std::map<std::string, std::vector<std::string>> aliases;
  if (!records.empty()) aliases[records.front().job_id].push_back(std::string(kLatest));
  std::vector<v1::Task> tasks(records.size());
  for (size_t i = 0; i < records.size(); ++i) tasks[i] = RecordTask(records[i]);
  for (v1::Task t : kServableTasks) {
    for (size_t i = 0; i < records.size(); ++i) {
      if (tasks[i] == t) {
        aliases[records[i].job_id].push_back(absl::StrCat(kLatest, ":", TaskAliasName(t)));
        break;
      }
    }
  }

  std::vector<v1::ModelInfo> infos;
  for (size_t i = 0; i < records.size(); ++i) {
    const ServableModelRecord& record = records[i];
    if (task != v1::TASK_UNSPECIFIED && tasks[i] != task) continue;
    v1::ModelInfo info;
    info.set_job_id(record.job_id);
    info.set_name(record.name);
    info.set_task(tasks[i]);
    for (const std::string& alias : aliases[record.job_id]) info.add_aliases(alias);
    info.set_best_value(record.best_value);

    std::shared_ptr<ServableModel> loaded;
    std::optional<int64_t> parameters;
    {
      absl::MutexLock lock(&mu_);
      auto it = entries_.find(record.job_id);
      if (it != entries_.end()) loaded = it->second->model;
      auto count = parameter_counts_.find(record.job_id);
      if (count != parameter_counts_.end()) parameters = count->second;
    }
    info.set_loaded(loaded != nullptr);
    StatusOr<ModelDescription> described = loaded != nullptr
                                               ? StatusOr<ModelDescription>(loaded->description())
                                               : DescribeModel(record);
    if (!described.ok()) {
      // Listed with what the record says: the model's own problem shows when it is used.
      info.set_monitor(record.monitor);
      infos.push_back(std::move(info));
      continue;
    }
    const ModelDescription& d = *described;
    if (info.name().empty()) info.set_name(d.spec.proto().name());
    for (const std::string& name : d.class_names) info.add_class_names(name);
    info.set_input_size(static_cast<int32_t>(d.input_size));
    info.set_in_channels(static_cast<int32_t>(d.in_channels));
    info.set_model_family(d.family);
    info.set_monitor(record.monitor.empty() ? d.spec.proto().training().monitor() : record.monitor);
    if (!parameters.has_value()) {
      try {
        StatusOr<int64_t> counted = models::CountSpecParameters(d.network);
        if (counted.ok()) {
          parameters = *counted;
          absl::MutexLock lock(&mu_);
          parameter_counts_[record.job_id] = *counted;
        }
      } catch (const std::exception&) {
        // Left at 0: counting is informational.
      }
    }
    info.set_parameters(parameters.value_or(0));
    infos.push_back(std::move(info));
  }
  return infos;
}

std::vector<std::string> ModelRegistry::LoadedJobIds() const {
  absl::MutexLock lock(&mu_);
  return std::vector<std::string>(lru_.begin(), lru_.end());
}

int64_t ModelRegistry::load_count() const {
  absl::MutexLock lock(&mu_);
  return load_count_;
}

}  // namespace selene::serving
