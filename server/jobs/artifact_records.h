// The files of a run as the job store records them (name, size, sha256), and the check a server
// makes before it trusts a file from the shared artifact root.
#pragma once

#include <string>
#include <vector>

#include "common/run_folder.h"
#include "common/status.h"
#include "server/jobs/job_store.h"

namespace selene::jobs {

// Every regular file in the run's folder but temporaries, by name, with its size and sha256.
StatusOr<std::vector<ArtifactRecord>> DescribeRunFiles(const RunFolder& folder);

// OK when the file at `path` has the recorded size and sha256; DataLoss naming the file, what
// was recorded and what is there otherwise (a partial copy, a file changed or damaged since).
Status VerifyArtifact(const std::string& path, const ArtifactRecord& recorded);

// VerifyArtifact for the file `name` of job `job_id` in `folder`, when the store recorded it;
// OK when it did not (a job that ran before the store kept records).
Status VerifyRecordedArtifact(JobStore& store, const std::string& job_id, const RunFolder& folder,
                              const std::string& name);

}  // namespace selene::jobs
