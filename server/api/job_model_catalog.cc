#include "server/api/job_model_catalog.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/run_folder.h"
#include "common/text_limits.h"
#include "google/protobuf/util/time_util.h"
#include "server/jobs/artifact_records.h"

namespace selene::api {

serving::ServableModelRecord JobModelCatalog::RecordOf(const v1::Job& job) const {
  serving::ServableModelRecord record;
  record.job_id = job.id();
  record.name = job.spec().name();
  const RunFolder folder = RunFolder::OfJob(state_dir_, job.id());
  record.checkpoint_path = folder.best_checkpoint();
  // The folder may be on a volume other servers wrote (--artifact_root): the weights must be
  // the ones the job recorded, whole.
  record.check_files = [store = store_, id = job.id(), folder] {
    return jobs::VerifyRecordedArtifact(*store, id, folder, RunFolder::kBestCheckpoint);
  };
  // The job's own spec (DescribeModel resolves it as the runner did): the same network
  // spec.json describes, without a file read per job on every "latest" lookup.
  record.spec = job.spec();
  // Finish time orders "latest"; a job without one (never expected for a succeeded job) falls
  // back to its event count, which still grows with time.
  record.finish_order =
      job.has_finish_time()
          ? google::protobuf::util::TimeUtil::TimestampToNanoseconds(job.finish_time())
          : job.last_event_sequence();
  record.monitor = job.monitor();
  record.best_value = job.best_value();
  return record;
}

StatusOr<serving::ServableModelRecord> JobModelCatalog::Find(const std::string& job_id) {
  SELENE_ASSIGN_OR_RETURN(v1::Job job, store_->Get(job_id));
  if (job.state() != v1::JOB_STATE_SUCCEEDED) {
    return FailedPreconditionError(absl::StrCat(
        ForMessage(job_id), " is ", absl::StripPrefix(v1::JobState_Name(job.state()), "JOB_STATE_"),
        "; its model is servable once it succeeds"));
  }
  return RecordOf(job);
}

StatusOr<std::vector<serving::ServableModelRecord>> JobModelCatalog::ListServable() {
  std::vector<serving::ServableModelRecord> records;
  std::string token;
  do {
    SELENE_ASSIGN_OR_RETURN(jobs::JobPage page, store_->List(v1::JOB_STATE_SUCCEEDED,
                                                             jobs::JobStore::kMaxPageSize, token));
    for (const v1::Job& job : page.jobs) records.push_back(RecordOf(job));
    token = std::move(page.next_page_token);
  } while (!token.empty());
  return records;
}

}  // namespace selene::api
