// run_summary.json: the few numbers that describe one finished run (selene.v1.RunSummary),
// made from its spec and training result, written and read in protobuf's JSON mapping. Cross-run
// comparison reads these files; the server keeps the same message per job.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "selene/v1/job_spec.pb.h"
#include "selene/v1/run_summary.pb.h"
#include "spec/resolved_job_spec.h"

namespace selene::train {
struct TrainResult;  // server/train/trainer.h (which pulls in torch)
}

namespace selene::report {

// `spec` gives the task, model family, encoder mode ("scratch", "frozen", "finetune"; "" for
// other families), data kind, image size and monitor. Best and final metrics are the validation
// metrics of those epochs.
v1::RunSummary MakeRunSummary(const std::string& name, const spec::ResolvedJobSpec& spec,
                              int64_t parameters, const train::TrainResult& result,
                              double total_seconds);

// Pretty JSON with proto field names and every field, even zero ones. Errors name the path.
Status WriteRunSummaryJson(const std::string& path, const v1::RunSummary& summary);
// NotFound for a missing file, InvalidArgument for bad JSON; both name the path. Unknown fields
// are ignored, so older readers accept newer files.
StatusOr<v1::RunSummary> ReadRunSummaryJson(const std::string& path);

}  // namespace selene::report
