// What serving needs to know about finished jobs, as an interface the server implements over its
// job store: serving (floor 3) does not depend on the store, and tests give it a fake. The
// registry asks the catalog on every cache miss, so a job that succeeds while the server runs is
// servable at once, without a restart.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "selene/v1/job_spec.pb.h"

namespace selene::serving {

struct ServableModelRecord {
  std::string job_id;
  std::string name;             // the job's spec.name
  std::string checkpoint_path;  // the job folder's best.pt; class_names.txt may sit next to it
  // The job's spec, as submitted or resolved (DescribeModel resolves it). When its task is
  // unset, the spec is read from the checkpoint's metadata instead.
  v1::JobSpec spec;
  // Larger = finished later; "latest" picks the largest.
  int64_t finish_order = 0;
  // The best epoch's monitored metric and its value, when the store knows them ("" = the spec's
  // training.monitor, value 0).
  std::string monitor;
  double best_value = 0.0;
  // Asked before the checkpoint is loaded (optional): an error refuses the load, e.g. a file on
  // a shared artifact root that does not match the sha256 its job recorded.
  std::function<Status()> check_files;
};

class ModelCatalog {
 public:
  virtual ~ModelCatalog() = default;

  // A succeeded job's model. NotFound naming the job when it is unknown; FailedPrecondition when
  // it exists but has not succeeded ("job-3 is RUNNING; its model is servable once it
  // succeeds"). Called concurrently.
  virtual StatusOr<ServableModelRecord> Find(const std::string& job_id) = 0;

  // Every succeeded job's model, in any order. Called concurrently.
  virtual StatusOr<std::vector<ServableModelRecord>> ListServable() = 0;
};

}  // namespace selene::serving
