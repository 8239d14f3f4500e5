// The serving layer's view of the job store: a succeeded job's best.pt is a servable model. The
// model registry asks this catalog on every cache miss, so a job that succeeds while the server
// runs can be served at once.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "selene/v1/training_service.pb.h"
#include "server/jobs/job_store.h"
#include "server/serving/model_catalog.h"

namespace selene::api {

// Thread-safe (the store is).
class JobModelCatalog final : public serving::ModelCatalog {
 public:
  // `store` must outlive the catalog; job folders are <state_dir>/jobs/<id>.
  JobModelCatalog(jobs::JobStore* store, std::string state_dir)
      : store_(store), state_dir_(std::move(state_dir)) {}

  // NotFound "job job-9 not found"; FailedPrecondition "job-3 is RUNNING; its model is servable
  // once it succeeds" for a job that has not succeeded.
  StatusOr<serving::ServableModelRecord> Find(const std::string& job_id) override;

  // Every SUCCEEDED job, newest first.
  StatusOr<std::vector<serving::ServableModelRecord>> ListServable() override;

  // The record of a job known to have succeeded.
  serving::ServableModelRecord RecordOf(const v1::Job& job) const;

 private:
  jobs::JobStore* const store_;
  const std::string state_dir_;
};

}  // namespace selene::api
