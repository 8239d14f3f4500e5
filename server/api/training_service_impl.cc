#include "server/api/training_service_impl.h"

#include <exception>
#include <filesystem>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/run_folder.h"
#include "common/text_limits.h"
#include "server/api/enum_filter.h"
#include "server/api/finished_write_reactor.h"
#include "server/api/grpc_status.h"
#include "server/api/guarded.h"
#include "server/api/job_admission.h"
#include "server/data/data_root.h"
#include "server/jobs/job_runner.h"
#include "server/report/run_comparison.h"
#include "server/report/run_summary.h"
#include "spec/resolved_job_spec.h"

namespace selene::api {
namespace {

Status RequireJobId(const std::string& job_id) {
  if (job_id.empty()) return InvalidArgumentError("job_id: empty; name a job (\"job-<n>\")");
  return OkStatus();
}

// Finishes a unary call with `result`, moving the value into the response on success.
template <typename Response>
grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* context,
                                      StatusOr<Response> result, Response* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (result.ok()) *response = *std::move(result);
  reactor->Finish(ToGrpcStatus(result.status()));
  return reactor;
}

bool IsFileDataKind(v1::DataKind kind) {
  return kind == v1::DATA_KIND_TINY_IMAGENET || kind == v1::DATA_KIND_MOON ||
         kind == v1::DATA_KIND_SEGMENTATION_FOLDER;
}

// Streams one opened artifact from an offset. Each step starts from the previous write's
// completion, so the reactor is never entered twice at once and needs no lock.
class DownloadStream final : public grpc::ServerWriteReactor<v1::ArtifactChunk> {
 public:
  DownloadStream(std::unique_ptr<OpenArtifact> file, int64_t offset)
      : file_(std::move(file)), offset_(offset) {
    WriteNext();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) return Finish(grpc::Status(grpc::StatusCode::CANCELLED, "download cancelled"));
    if (sent_last_) return Finish(grpc::Status::OK);
    WriteNext();
  }

  void OnDone() override { delete this; }

 private:
  void WriteNext() {
    StatusOr<std::string> data = Guarded<StatusOr<std::string>>(
        "DownloadArtifact", [&] { return file_->Read(offset_, TrainingServiceImpl::kChunkBytes); });
    if (!data.ok()) return Finish(ToGrpcStatus(data.status()));
    chunk_.Clear();
    chunk_.set_offset(offset_);
    chunk_.set_total_size(file_->size());
    if (first_) chunk_.set_sha256(file_->sha256());
    first_ = false;
    offset_ += static_cast<int64_t>(data->size());
    *chunk_.mutable_data() = *std::move(data);
    sent_last_ = offset_ >= file_->size();
    StartWrite(&chunk_);
  }

  const std::unique_ptr<OpenArtifact> file_;
  int64_t offset_;
  bool first_ = true;
  bool sent_last_ = false;
  v1::ArtifactChunk chunk_;  // being written until OnWriteDone
};

}  // namespace

TrainingServiceImpl::TrainingServiceImpl(jobs::JobStore* store, jobs::Scheduler* scheduler,
                                         events::JobEventHub* hub, const TokenAuth* auth,
                                         TrainingServiceOptions options)
    : store_(store),
      scheduler_(scheduler),
      auth_(auth),
      options_(std::move(options)),
      artifacts_(options_.state_dir),
      watcher_(store, hub),
      read_only_reason_(options_.read_only_reason) {}

TrainingServiceImpl::~TrainingServiceImpl() = default;

void TrainingServiceImpl::Shutdown() {
  draining_ = true;
  watcher_.Shutdown();
}

Status TrainingServiceImpl::Authenticate(const grpc::CallbackServerContext& context) const {
  if (draining_) return absl::UnavailableError("selene-server is shutting down");
  return auth_ == nullptr ? OkStatus() : auth_->Authenticate(context);
}

// ---------------------------------------------------------------------------------------------
// SubmitJob.

StatusOr<spec::ResolvedJobSpec> TrainingServiceImpl::Admit(const v1::JobSpec& spec) const {
  StatusOr<spec::ResolvedJobSpec> resolved = spec::ResolvedJobSpec::Resolve(spec);
  if (!resolved.ok()) {
    return InvalidArgumentError(absl::StrCat("invalid job spec: ", resolved.status().message()));
  }
  const v1::DataSpec& data = spec.data();
  std::string data_folder;  // resolved, for file data sets
  if (IsFileDataKind(data.kind())) {
    StatusOr<std::string> resolved = data::ResolveUnderRoot(options_.data_root, data.path());
    if (!resolved.ok()) {
      // Missing or outside the root, the spec names a folder this server cannot train on.
      return InvalidArgumentError(absl::StrCat("data.path: ", resolved.status().message()));
    }
    data_folder = *std::move(resolved);
  }
  if (spec.model().has_encoder_unet()) {
    const v1::EncoderUNetSpec& encoder = spec.model().encoder_unet();
    if (!encoder.encoder_checkpoint().empty()) {
      // A path on the server's disk, outside anything a client should reach: the server takes
      // the classifier as a job of its own instead.
      return InvalidArgumentError(absl::StrCat(
          "model.encoder_unet.encoder_checkpoint: \"", ForMessage(encoder.encoder_checkpoint()),
          "\" is a file path; the server takes model.encoder_unet.encoder_job_id, the id of a "
          "classifier job whose best checkpoint becomes the encoder"));
    }
    if (!encoder.encoder_job_id().empty()) {
      StatusOr<v1::Job> dependency = store_->Get(encoder.encoder_job_id());
      if (!dependency.ok()) {
        return absl::Status(
            dependency.status().code(),
            absl::StrCat("model.encoder_unet.encoder_job_id: ", dependency.status().message()));
      }
      if (!dependency->spec().model().has_classifier()) {
        return InvalidArgumentError(absl::StrCat(
            "model.encoder_unet.encoder_job_id: ", dependency->id(),
            " is not a classifier job; an encoder U-Net's encoder comes from a classifier"));
      }
      if (dependency->state() == v1::JOB_STATE_FAILED ||
          dependency->state() == v1::JOB_STATE_CANCELLED) {
        return FailedPreconditionError(
            absl::StrCat("model.encoder_unet.encoder_job_id: ", dependency->id(), " is ",
                         jobs::StateName(dependency->state()), " and will never give an encoder"));
      }
    }
  }
  SELENE_RETURN_IF_ERROR(CheckDeviceAvailable(spec.training().device(), options_.devices));
  // Last: it may walk the data set's folders to count its images.
  SELENE_RETURN_IF_ERROR(CheckJobMemory(*resolved, data_folder, options_.max_job_memory_bytes,
                                        options_.max_job_memory_origin));
  return resolved;
}

StatusOr<bool> TrainingServiceImpl::QueuedWithRequestId(const std::string& request_id) const {
  std::string token;
  do {
    SELENE_ASSIGN_OR_RETURN(jobs::JobPage page, store_->List(v1::JOB_STATE_QUEUED,
                                                             jobs::JobStore::kMaxPageSize, token));
    for (const v1::Job& job : page.jobs) {
      if (job.request_id() == request_id) return true;
    }
    token = std::move(page.next_page_token);
  } while (!token.empty());
  return false;
}

void TrainingServiceImpl::SetReadOnly(std::string reason) {
  absl::MutexLock lock(&read_only_mu_);
  read_only_reason_ = std::move(reason);
}

Status TrainingServiceImpl::CheckWritable() const {
  absl::MutexLock lock(&read_only_mu_);
  if (read_only_reason_.empty()) return OkStatus();
  return absl::UnavailableError(absl::StrCat("selene-server is read-only: ", read_only_reason_));
}

StatusOr<v1::SubmitJobResponse> TrainingServiceImpl::Submit(const v1::SubmitJobRequest& request) {
  SELENE_RETURN_IF_ERROR(CheckWritable());
  if (!request.has_spec()) return InvalidArgumentError("spec: required");
  SELENE_ASSIGN_OR_RETURN(spec::ResolvedJobSpec spec, Admit(request.spec()));

  absl::MutexLock lock(&submit_mu_);
  SELENE_ASSIGN_OR_RETURN(auto counts, store_->CountByState());
  const int64_t queued = counts[v1::JOB_STATE_QUEUED];
  if (queued >= options_.queue_limit) {
    // A retry of a submission that is itself waiting in the full queue still gets its job.
    bool retry = false;
    if (!request.request_id().empty()) {
      SELENE_ASSIGN_OR_RETURN(retry, QueuedWithRequestId(request.request_id()));
    }
    if (!retry) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "queue full: ", queued, " jobs queued (--queue_limit ", options_.queue_limit, ")"));
    }
  }
  SELENE_ASSIGN_OR_RETURN(jobs::SubmitResult submitted,
                          scheduler_->Submit(spec, request.request_id(), request.priority()));
  v1::SubmitJobResponse response;
  *response.mutable_job() = std::move(submitted.job);
  response.set_created(submitted.created);
  return response;
}

grpc::ServerUnaryReactor* TrainingServiceImpl::SubmitJob(grpc::CallbackServerContext* context,
                                                         const v1::SubmitJobRequest* request,
                                                         v1::SubmitJobResponse* response) {
  return FinishUnary(
      context,
      Guarded<StatusOr<v1::SubmitJobResponse>>("SubmitJob",
                                               [&]() -> StatusOr<v1::SubmitJobResponse> {
                                                 SELENE_RETURN_IF_ERROR(Authenticate(*context));
                                                 return Submit(*request);
                                               }),
      response);
}

// ---------------------------------------------------------------------------------------------
// Queries and cancel.

grpc::ServerUnaryReactor* TrainingServiceImpl::GetJob(grpc::CallbackServerContext* context,
                                                      const v1::GetJobRequest* request,
                                                      v1::Job* response) {
  return FinishUnary(
      context,
      Guarded<StatusOr<v1::Job>>("GetJob",
                                 [&]() -> StatusOr<v1::Job> {
                                   SELENE_RETURN_IF_ERROR(Authenticate(*context));
                                   SELENE_RETURN_IF_ERROR(RequireJobId(request->job_id()));
                                   return store_->Get(request->job_id());
                                 }),
      response);
}

grpc::ServerUnaryReactor* TrainingServiceImpl::ListJobs(grpc::CallbackServerContext* context,
                                                        const v1::ListJobsRequest* request,
                                                        v1::ListJobsResponse* response) {
  return FinishUnary(
      context,
      Guarded<StatusOr<v1::ListJobsResponse>>(
          "ListJobs",
          [&]() -> StatusOr<v1::ListJobsResponse> {
            SELENE_RETURN_IF_ERROR(Authenticate(*context));
            SELENE_RETURN_IF_ERROR(
                CheckEnumFilter("state", request->state(), v1::JobState_descriptor()));
            SELENE_ASSIGN_OR_RETURN(
                jobs::JobPage page,
                store_->List(request->state(), request->page_size(), request->page_token()));
            v1::ListJobsResponse listed;
            for (v1::Job& job : page.jobs) *listed.add_jobs() = std::move(job);
            listed.set_next_page_token(std::move(page.next_page_token));
            return listed;
          }),
      response);
}

StatusOr<v1::Job> TrainingServiceImpl::Cancel(const v1::CancelJobRequest& request) {
  SELENE_RETURN_IF_ERROR(CheckWritable());
  SELENE_RETURN_IF_ERROR(RequireJobId(request.job_id()));
  return scheduler_->Cancel(request.job_id(), request.reason());
}

grpc::ServerUnaryReactor* TrainingServiceImpl::CancelJob(grpc::CallbackServerContext* context,
                                                         const v1::CancelJobRequest* request,
                                                         v1::Job* response) {
  return FinishUnary(context,
                     Guarded<StatusOr<v1::Job>>("CancelJob",
                                                [&]() -> StatusOr<v1::Job> {
                                                  SELENE_RETURN_IF_ERROR(Authenticate(*context));
                                                  return Cancel(*request);
                                                }),
                     response);
}

grpc::ServerWriteReactor<v1::JobEvent>* TrainingServiceImpl::WatchJob(
    grpc::CallbackServerContext* context, const v1::WatchJobRequest* request) {
  if (Status status = Authenticate(*context); !status.ok()) {
    return new FinishedWriteReactor<v1::JobEvent>(ToGrpcStatus(status));
  }
  try {
    return watcher_.Watch(context, request);
  } catch (const std::exception& e) {
    return new FinishedWriteReactor<v1::JobEvent>(
        ToGrpcStatus(InternalError(absl::StrCat("WatchJob: ", e.what()))));
  }
}

// ---------------------------------------------------------------------------------------------
// Artifacts.

StatusOr<v1::ListArtifactsResponse> TrainingServiceImpl::ListArtifactsOf(
    const std::string& job_id) {
  SELENE_RETURN_IF_ERROR(RequireJobId(job_id));
  SELENE_RETURN_IF_ERROR(store_->Get(job_id).status());
  SELENE_ASSIGN_OR_RETURN(std::vector<v1::Artifact> artifacts, artifacts_.List(job_id));
  v1::ListArtifactsResponse response;
  for (v1::Artifact& artifact : artifacts) *response.add_artifacts() = std::move(artifact);
  return response;
}

grpc::ServerUnaryReactor* TrainingServiceImpl::ListArtifacts(
    grpc::CallbackServerContext* context, const v1::ListArtifactsRequest* request,
    v1::ListArtifactsResponse* response) {
  return FinishUnary(
      context,
      Guarded<StatusOr<v1::ListArtifactsResponse>>("ListArtifacts",
                                                   [&]() -> StatusOr<v1::ListArtifactsResponse> {
                                                     SELENE_RETURN_IF_ERROR(Authenticate(*context));
                                                     return ListArtifactsOf(request->job_id());
                                                   }),
      response);
}

grpc::ServerWriteReactor<v1::ArtifactChunk>* TrainingServiceImpl::DownloadArtifact(
    grpc::CallbackServerContext* context, const v1::DownloadArtifactRequest* request) {
  StatusOr<std::unique_ptr<OpenArtifact>> opened = Guarded<StatusOr<std::unique_ptr<OpenArtifact>>>(
      "DownloadArtifact", [&]() -> StatusOr<std::unique_ptr<OpenArtifact>> {
        SELENE_RETURN_IF_ERROR(Authenticate(*context));
        SELENE_RETURN_IF_ERROR(RequireJobId(request->job_id()));
        if (request->offset() < 0) {
          return InvalidArgumentError(absl::StrCat("offset ", request->offset(), " must be >= 0"));
        }
        SELENE_RETURN_IF_ERROR(store_->Get(request->job_id()).status());
        SELENE_ASSIGN_OR_RETURN(std::unique_ptr<OpenArtifact> file,
                                artifacts_.Open(request->job_id(), request->name()));
        if (request->offset() > file->size()) {
          return OutOfRangeError(absl::StrCat("offset ", request->offset(),
                                              " is beyond the end of ", request->job_id(), "'s ",
                                              request->name(), " (", file->size(), " bytes)"));
        }
        return file;
      });
  if (!opened.ok()) {
    return new FinishedWriteReactor<v1::ArtifactChunk>(ToGrpcStatus(opened.status()));
  }
  return new DownloadStream(*std::move(opened), request->offset());
}

// ---------------------------------------------------------------------------------------------
// CompareJobs.

StatusOr<v1::CompareJobsResponse> TrainingServiceImpl::Compare(
    const v1::CompareJobsRequest& request) {
  if (request.job_ids().empty()) {
    return InvalidArgumentError("job_ids: empty; name one or more jobs to compare");
  }
  v1::CompareJobsResponse response;
  std::vector<v1::RunSummary> summaries;
  for (const std::string& job_id : request.job_ids()) {
    SELENE_RETURN_IF_ERROR(RequireJobId(job_id));
    SELENE_ASSIGN_OR_RETURN(v1::Job job, store_->Get(job_id));
    const std::string path = RunFolder::OfJob(options_.state_dir, job_id).run_summary();
    StatusOr<v1::RunSummary> summary = report::ReadRunSummaryJson(path);
    if (summary.status().code() == absl::StatusCode::kNotFound) {
      return FailedPreconditionError(absl::StrCat(job_id, " has no run_summary.json yet (it is ",
                                                  jobs::StateName(job.state()), ")"));
    }
    if (!summary.ok()) {
      return absl::Status(summary.status().code(),
                          absl::StrCat(job_id, ": ", summary.status().message()));
    }
    if (summary->name().empty())
      summary->set_name(job.spec().name().empty() ? job_id : job.spec().name());
    summaries.push_back(*summary);
    v1::ComparedJob* compared = response.add_jobs();
    compared->set_job_id(job_id);
    *compared->mutable_summary() = *std::move(summary);
  }
  response.set_markdown(report::FormatComparisonTable(summaries));
  return response;
}

grpc::ServerUnaryReactor* TrainingServiceImpl::CompareJobs(grpc::CallbackServerContext* context,
                                                           const v1::CompareJobsRequest* request,
                                                           v1::CompareJobsResponse* response) {
  return FinishUnary(
      context,
      Guarded<StatusOr<v1::CompareJobsResponse>>("CompareJobs",
                                                 [&]() -> StatusOr<v1::CompareJobsResponse> {
                                                   SELENE_RETURN_IF_ERROR(Authenticate(*context));
                                                   return Compare(*request);
                                                 }),
      response);
}

}  // namespace selene::api
