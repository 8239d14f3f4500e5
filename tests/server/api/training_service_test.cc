// Tests server/api/training_service_impl.h through real stubs on an in-process server: idempotent
// submits, every refused submit with its code and the field or path it names (the next valid
// submit still works), unknown jobs, the queue limit, cancelling queued and running jobs, WatchJob
// resumed from a sequence, ended by its deadline or by the client, artifacts of running and
// finished jobs, downloads in 1 MiB chunks from any offset, CompareJobs, ListJobs paging.
#include "server/api/training_service_impl.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/run_folder.h"
#include "common/sha256.h"
#include "google/protobuf/util/message_differencer.h"
#include "server/api/selene_server.h"
#include "server/jobs/job_runner.h"
#include "tests/server/api/api_test_util.h"
#include "tests/testing/files.h"

namespace selene::api {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsSupersetOf;
using testing::TestClient;

class TrainingServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir("selene-training-service");
    options_ = testing::TestServerOptions(dir_);
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(dir_);
  }

  void Start() {
    StatusOr<std::unique_ptr<SeleneServer>> server = SeleneServer::Start(options_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(server).value();
    client_ = std::make_unique<TestClient>(server_->address());
  }

  fs::path Folder(const std::string& id) { return RunFolder::OfJob(options_.state_dir, id).path(); }

  // Submits a long job and waits until it runs (one CPU slot: later jobs stay queued).
  std::string StartLongJob() {
    const std::string id = client_->SubmitOk(testing::MoonSpec("long", 100000));
    client_->WaitFor(id, [](const v1::Job& job) { return job.state() == v1::JOB_STATE_RUNNING; });
    return id;
  }

  grpc::Status SubmitStatus(const v1::JobSpec& spec) {
    v1::SubmitJobResponse response;
    return client_->Submit(spec, &response);
  }

  std::string dir_;
  SeleneServerOptions options_;
  std::unique_ptr<SeleneServer> server_;
  std::unique_ptr<TestClient> client_;
};

TEST_F(TrainingServiceTest, RetriedSubmitWithTheSameRequestIdGivesOneJob) {
  Start();
  v1::SubmitJobResponse first, retry, other;
  ASSERT_TRUE(client_->Submit(testing::MoonSpec("m", 1), &first, "req-1").ok());
  EXPECT_TRUE(first.created());
  ASSERT_TRUE(client_->Submit(testing::MoonSpec("m", 1), &retry, "req-1").ok());
  EXPECT_FALSE(retry.created());
  EXPECT_EQ(retry.job().id(), first.job().id());
  EXPECT_EQ(retry.job().request_id(), "req-1");
  const grpc::Status reused = client_->Submit(testing::MoonSpec("changed", 1), &other, "req-1");
  EXPECT_EQ(reused.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(reused.error_message(), HasSubstr("req-1"));

  grpc::ClientContext context;
  client_->Prepare(&context);
  v1::ListJobsResponse listed;
  ASSERT_TRUE(client_->training().ListJobs(&context, v1::ListJobsRequest(), &listed).ok());
  EXPECT_EQ(listed.jobs_size(), 1);
}

TEST_F(TrainingServiceTest, RefusedSubmitsNameTheProblemAndTheServerKeepsServing) {
  fs::create_directories(fs::path(dir_) / "outside");
  fs::create_symlink(fs::path(dir_) / "outside", fs::path(options_.data_root) / "escape");
  Start();
  const auto expect_then_recover = [&](const v1::JobSpec& spec, grpc::StatusCode code,
                                       const std::vector<std::string>& named) {
    const grpc::Status status = SubmitStatus(spec);
    EXPECT_EQ(status.error_code(), code) << status.error_message();
    for (const std::string& part : named) EXPECT_THAT(status.error_message(), HasSubstr(part));
    // A valid request right after succeeds.
    EXPECT_FALSE(client_->SubmitOk(testing::MoonSpec("fine", 1)).empty());
  };

  v1::SubmitJobRequest empty;
  {
    grpc::ClientContext context;
    client_->Prepare(&context);
    v1::SubmitJobResponse response;
    const grpc::Status status = client_->training().SubmitJob(&context, empty, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr("spec"));
  }

  v1::JobSpec invalid = testing::MoonSpec("bad", 1);
  invalid.mutable_training()->set_batch_size(0);
  invalid.mutable_data()->set_image_size(30);
  expect_then_recover(invalid, grpc::StatusCode::INVALID_ARGUMENT,
                      {"training.batch_size", "data.image_size"});

  v1::JobSpec moon = testing::MoonSpec("files", 1);
  moon.mutable_data()->set_kind(v1::DATA_KIND_MOON);
  moon.mutable_data()->clear_num_samples();
  moon.mutable_data()->set_path("../outside");
  expect_then_recover(moon, grpc::StatusCode::INVALID_ARGUMENT, {"data.path", "../outside"});
  moon.mutable_data()->set_path("escape");
  expect_then_recover(moon, grpc::StatusCode::INVALID_ARGUMENT,
                      {"data.path", "escape", "outside the data root"});
  moon.mutable_data()->set_path("not-there");
  expect_then_recover(moon, grpc::StatusCode::INVALID_ARGUMENT, {"data.path", "not-there"});

  expect_then_recover(testing::EncoderUNetSpec("enc", "job-999"), grpc::StatusCode::NOT_FOUND,
                      {"encoder_job_id", "job-999"});
  const std::string unet = client_->SubmitOk(testing::MoonSpec("not a classifier", 1));
  expect_then_recover(testing::EncoderUNetSpec("enc", unet), grpc::StatusCode::INVALID_ARGUMENT,
                      {unet, "not a classifier"});
  v1::JobSpec by_path = testing::EncoderUNetSpec("enc", "");
  by_path.mutable_model()->mutable_encoder_unet()->set_encoder_checkpoint("/etc/passwd");
  expect_then_recover(by_path, grpc::StatusCode::INVALID_ARGUMENT,
                      {"encoder_checkpoint", "/etc/passwd"});
}

TEST_F(TrainingServiceTest, JobsThatCanNeverRunAreRefusedAtSubmit) {
  Start();
  const auto expect_refused = [&](const v1::JobSpec& spec, grpc::StatusCode code,
                                  const std::vector<std::string>& named) {
    const grpc::Status status = SubmitStatus(spec);
    EXPECT_EQ(status.error_code(), code) << status.error_message();
    for (const std::string& part : named) EXPECT_THAT(status.error_message(), HasSubstr(part));
  };

  // Within the width bound but far beyond any machine: refused for its memory, naming the
  // estimate, its parts and the limit (the default, 80% of this machine's memory).
  v1::JobSpec wide = testing::MoonSpec("wide", 1);
  wide.mutable_model()->mutable_unet()->set_base_width(100000);
  expect_refused(wide, grpc::StatusCode::RESOURCE_EXHAUSTED,
                 {"job needs about ", "PiB (parameters ", "optimizer ", "activations ", "data ",
                  " but --max_job_memory_mb (default: 80% of this machine's ", ") allows "});

  v1::JobSpec forever = testing::MoonSpec("forever", 1);
  forever.mutable_training()->set_epochs(1000000000000);
  expect_refused(forever, grpc::StatusCode::INVALID_ARGUMENT,
                 {"training.epochs: 1000000000000 must be <= 100000"});

  v1::JobSpec elsewhere = testing::MoonSpec("elsewhere", 1);
  elsewhere.mutable_training()->set_device("cuda:7");
  expect_refused(elsewhere, grpc::StatusCode::FAILED_PRECONDITION,
                 {"training.device", "\"cuda:7\"", "it has cpu"});
  elsewhere.mutable_training()->set_device("cuda");
  expect_refused(elsewhere, grpc::StatusCode::FAILED_PRECONDITION, {"\"cuda\"", "it has cpu"});

  v1::JobSpec infinite = testing::MoonSpec("infinite", 1);
  infinite.mutable_training()->mutable_optimizer()->set_lr(std::numeric_limits<double>::infinity());
  expect_refused(infinite, grpc::StatusCode::INVALID_ARGUMENT,
                 {"training.optimizer.lr: inf is not a finite number"});

  // Any device, or the one the server has, is fine.
  for (const char* device : {"", "auto", "cpu"}) {
    v1::JobSpec fine = testing::MoonSpec("fine", 1);
    fine.mutable_training()->set_device(device);
    EXPECT_FALSE(client_->SubmitOk(fine).empty()) << device;
  }
}

TEST_F(TrainingServiceTest, MemoryLimitFlagIsNamedWithItsValue) {
  options_.max_job_memory_mb = 64;
  Start();
  v1::JobSpec big = testing::MoonSpec("big batch", 1);
  big.mutable_training()->set_batch_size(4096);
  const grpc::Status status = SubmitStatus(big);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr(" but --max_job_memory_mb allows 64.0 MiB"));
  EXPECT_FALSE(client_->SubmitOk(testing::MoonSpec("small", 1)).empty());
}

TEST_F(TrainingServiceTest, LongIdsAndNamesComeBackCut) {
  Start();
  const std::string long_id(100000, 'j');
  v1::Job job;
  grpc::Status status = client_->GetJob(long_id, &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_LT(status.error_message().size(), 200u);
  EXPECT_THAT(status.error_message(), HasSubstr("... (100000 bytes) not found"));
  status = client_->Cancel(long_id, &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_LT(status.error_message().size(), 200u);

  const std::string id = client_->SubmitOk(testing::MoonSpec("m", 1));
  std::vector<v1::ArtifactChunk> chunks;
  status = client_->Download(id, std::string(100000, 'a'), 0, &chunks);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_LT(status.error_message().size(), 300u);

  v1::SubmitJobResponse response;
  const std::string long_request(100000, 'r');
  ASSERT_TRUE(client_->Submit(testing::MoonSpec("r", 1), &response, long_request).ok());
  status = client_->Submit(testing::MoonSpec("other", 1), &response, long_request);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_LT(status.error_message().size(), 300u);

  v1::SegmentRequest segment;
  segment.set_model(std::string(100000, 'm'));
  segment.set_image("not an image");
  v1::SegmentResponse segmented;
  status = client_->Segment(segment, &segmented);
  EXPECT_NE(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_LT(status.error_message().size(), 300u);
}

TEST_F(TrainingServiceTest, UnknownEnumValuesInListFiltersAreInvalidArgument) {
  Start();
  {
    grpc::ClientContext context;
    client_->Prepare(&context);
    v1::ListJobsRequest request;
    request.set_state(static_cast<v1::JobState>(42));
    v1::ListJobsResponse response;
    const grpc::Status status = client_->training().ListJobs(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr("state: 42 is not a JobState ("));
  }
  {
    // The same check guards InferenceService.ListModels' task filter.
    grpc::ClientContext context;
    client_->Prepare(&context);
    v1::ListModelsRequest request;
    request.set_task(static_cast<v1::Task>(-3));
    v1::ListModelsResponse response;
    const grpc::Status status = client_->inference().ListModels(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr("task: -3 is not a Task ("));
  }
}

TEST_F(TrainingServiceTest, UnknownJobsAreNotFoundEverywhere) {
  Start();
  v1::Job job;
  grpc::Status status = client_->GetJob("job-999", &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(status.error_message(), "job job-999 not found");
  EXPECT_EQ(client_->Cancel("job-999", &job).error_code(), grpc::StatusCode::NOT_FOUND);
  grpc::Status watched;
  EXPECT_TRUE(client_->Watch("job-999", 0, &watched).empty());
  EXPECT_EQ(watched.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(watched.error_message(), HasSubstr("job-999"));
  std::vector<v1::ArtifactChunk> chunks;
  EXPECT_EQ(client_->Download("job-999", "best.pt", 0, &chunks).error_code(),
            grpc::StatusCode::NOT_FOUND);
  {
    grpc::ClientContext context;
    client_->Prepare(&context);
    v1::ListArtifactsRequest request;
    request.set_job_id("job-999");
    v1::ListArtifactsResponse response;
    EXPECT_EQ(client_->training().ListArtifacts(&context, request, &response).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext context;
    client_->Prepare(&context);
    v1::CompareJobsRequest request;
    request.add_job_ids("job-999");
    v1::CompareJobsResponse response;
    EXPECT_EQ(client_->training().CompareJobs(&context, request, &response).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  status = client_->GetJob("", &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("job_id"));
}

TEST_F(TrainingServiceTest, FullQueueIsResourceExhaustedButARetryStillGetsItsJob) {
  options_.queue_limit = 2;
  Start();
  const std::string running = StartLongJob();
  v1::SubmitJobResponse b, c, d, retry;
  ASSERT_TRUE(client_->Submit(testing::MoonSpec("b", 1), &b, "req-b").ok());
  ASSERT_TRUE(client_->Submit(testing::MoonSpec("c", 1), &c).ok());
  grpc::Status full = client_->Submit(testing::MoonSpec("d", 1), &d);
  EXPECT_EQ(full.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(full.error_message(), "queue full: 2 jobs queued (--queue_limit 2)");

  ASSERT_TRUE(client_->Submit(testing::MoonSpec("b", 1), &retry, "req-b").ok());
  EXPECT_FALSE(retry.created());
  EXPECT_EQ(retry.job().id(), b.job().id());

  v1::Job cancelled;
  ASSERT_TRUE(client_->Cancel(c.job().id(), &cancelled).ok());
  EXPECT_TRUE(client_->Submit(testing::MoonSpec("d", 1), &d).ok());
  ASSERT_TRUE(client_->Cancel(running, &cancelled).ok());
}

TEST_F(TrainingServiceTest, CancelsQueuedJobsAtOnceAndRunningJobsWithinAStep) {
  Start();
  const std::string running = StartLongJob();
  const std::string queued = client_->SubmitOk(testing::MoonSpec("waiting", 1));

  // A running job's artifacts are there to see (and fetch) already. Epoch 2 recorded means
  // epoch 1's last.pt is written (an epoch is recorded just before its checkpoint).
  client_->WaitFor(running, [](const v1::Job& job) { return job.current_epoch() >= 2; });
  {
    grpc::ClientContext context;
    client_->Prepare(&context);
    v1::ListArtifactsRequest request;
    request.set_job_id(running);
    v1::ListArtifactsResponse response;
    ASSERT_TRUE(client_->training().ListArtifacts(&context, request, &response).ok());
    std::vector<std::string> names;
    for (const v1::Artifact& a : response.artifacts()) names.push_back(a.name());
    EXPECT_THAT(names, IsSupersetOf({"last.pt", "spec.json"}));
    std::vector<v1::ArtifactChunk> chunks;
    EXPECT_TRUE(client_->Download(running, "last.pt", 0, &chunks).ok());
  }

  v1::Job job;
  ASSERT_TRUE(client_->Cancel(queued, &job, "not needed").ok());
  EXPECT_EQ(job.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(job.error(), "not needed");

  ASSERT_TRUE(client_->Cancel(running, &job, "enough").ok());
  EXPECT_TRUE(job.state() == v1::JOB_STATE_RUNNING || job.state() == v1::JOB_STATE_CANCELLED);
  if (job.state() == v1::JOB_STATE_RUNNING) {
    EXPECT_TRUE(job.cancel_requested());
  }
  job = client_->WaitTerminal(running, absl::Seconds(30));
  EXPECT_EQ(job.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(job.error(), "enough");

  const grpc::Status again = client_->Cancel(running, &job);
  EXPECT_EQ(again.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(again.error_message(), HasSubstr(running));
  EXPECT_THAT(again.error_message(), HasSubstr("CANCELLED"));
}

TEST_F(TrainingServiceTest, WatchResumesFromASequenceAndEndsAtTheTerminalEvent) {
  Start();
  const std::string id = client_->SubmitOk(testing::MoonSpec("watched", 2));
  grpc::Status status;
  const std::vector<v1::JobEvent> all = client_->Watch(id, 0, &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_GE(all.size(), 5u);
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].sequence(), int64_t(i) + 1);
  EXPECT_EQ(all.back().state_change().to_state(), v1::JOB_STATE_SUCCEEDED);

  // A watcher that saw up to k resumes from k: exactly the rest.
  const int64_t k = static_cast<int64_t>(all.size()) / 2;
  const std::vector<v1::JobEvent> rest = client_->Watch(id, k, &status);
  ASSERT_TRUE(status.ok());
  ASSERT_EQ(rest.size(), all.size() - k);
  for (size_t i = 0; i < rest.size(); ++i) {
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(rest[i], all[k + i]))
        << rest[i].ShortDebugString();
  }
  // One that saw the end gets nothing more, at once.
  EXPECT_TRUE(client_->Watch(id, all.back().sequence(), &status).empty());
  EXPECT_TRUE(status.ok());
  // A negative sequence is refused.
  client_->Watch(id, -1, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(TrainingServiceTest, WatchEndsAtItsDeadlineOrWhenTheClientCancels) {
  Start();
  const std::string running = StartLongJob();
  const std::string queued = client_->SubmitOk(testing::MoonSpec("waiting", 1));

  grpc::Status status;
  const std::vector<v1::JobEvent> events =
      client_->Watch(queued, 0, &status, absl::Milliseconds(500));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  ASSERT_EQ(events.size(), 1u);  // submitted; it never left the queue
  EXPECT_EQ(events[0].state_change().to_state(), v1::JOB_STATE_QUEUED);

  // The client cancels a watch of the running job after its first events.
  grpc::ClientContext context;
  client_->Prepare(&context);
  v1::WatchJobRequest request;
  request.set_job_id(running);
  auto reader = client_->training().WatchJob(&context, request);
  v1::JobEvent event;
  ASSERT_TRUE(reader->Read(&event));
  ASSERT_TRUE(reader->Read(&event));
  context.TryCancel();
  while (reader->Read(&event)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);

  // Both streams are gone from the server, which serves on.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (server_->training_service().active_watches() > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(server_->training_service().active_watches(), 0);
  EXPECT_EQ(client_->Get(queued).state(), v1::JOB_STATE_QUEUED);
  v1::Job job;
  ASSERT_TRUE(client_->Cancel(running, &job).ok());
}

TEST_F(TrainingServiceTest, DownloadsInChunksFromAnyOffsetAndRefusesBadNamesAndOffsets) {
  Start();
  const std::string id = client_->SubmitOk(testing::MoonSpec("done", 2));
  ASSERT_EQ(client_->WaitTerminal(id).state(), v1::JOB_STATE_SUCCEEDED);

  // A file over 2 MiB in the job's folder: three chunks.
  std::string big(int64_t{5} << 19, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131) >> 3);
  std::ofstream(Folder(id) / "big.bin", std::ios::binary) << big;

  std::vector<v1::ArtifactChunk> chunks;
  ASSERT_TRUE(client_->Download(id, "big.bin", 0, &chunks).ok());
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0].data().size(), size_t{1} << 20);
  EXPECT_EQ(chunks[1].offset(), int64_t{1} << 20);
  EXPECT_EQ(chunks[2].data().size(), size_t{1} << 19);
  EXPECT_EQ(chunks[0].sha256(), Sha256Hex(big));
  EXPECT_TRUE(chunks[1].sha256().empty());
  EXPECT_EQ(chunks[2].total_size(), static_cast<int64_t>(big.size()));
  EXPECT_EQ(chunks[0].data() + chunks[1].data() + chunks[2].data(), big);

  // Resumed after a break: the bytes from there, and the whole file's digest.
  chunks.clear();
  const int64_t resume = (int64_t{1} << 20) + 12345;
  ASSERT_TRUE(client_->Download(id, "big.bin", resume, &chunks).ok());
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[0].offset(), resume);
  EXPECT_EQ(chunks[0].sha256(), Sha256Hex(big));
  EXPECT_EQ(chunks[0].data() + chunks[1].data(), big.substr(resume));

  // At the very end: one empty chunk.
  chunks.clear();
  ASSERT_TRUE(client_->Download(id, "big.bin", big.size(), &chunks).ok());
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_TRUE(chunks[0].data().empty());

  grpc::Status status = client_->Download(id, "big.bin", big.size() + 1, &chunks);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_THAT(status.error_message(), HasSubstr(absl::StrCat(big.size() + 1)));
  EXPECT_THAT(status.error_message(), HasSubstr(absl::StrCat(big.size(), " bytes")));
  status = client_->Download(id, "big.bin", -1, &chunks);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  status = client_->Download(id, "../../selene.db", 0, &chunks);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("../../selene.db"));
  status = client_->Download(id, "nothing.pt", 0, &chunks);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("nothing.pt"));

  // The run's summary compares; a job without one says why.
  const std::string queued_later = client_->SubmitOk(testing::MoonSpec("later", 100000));
  v1::Job fresh = client_->Get(queued_later);
  grpc::ClientContext context;
  client_->Prepare(&context);
  v1::CompareJobsRequest request;
  request.add_job_ids(id);
  request.add_job_ids(queued_later);
  v1::CompareJobsResponse response;
  status = client_->training().CompareJobs(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(),
              HasSubstr(queued_later + " has no run_summary.json yet (it is "));
  grpc::ClientContext context2;
  client_->Prepare(&context2);
  request.clear_job_ids();
  request.add_job_ids(id);
  ASSERT_TRUE(client_->training().CompareJobs(&context2, request, &response).ok());
  EXPECT_THAT(response.markdown(), HasSubstr("done"));
  ASSERT_EQ(response.jobs_size(), 1);
  EXPECT_EQ(response.jobs(0).summary().epochs_run(), 2);
  ASSERT_TRUE(client_->Cancel(queued_later, &fresh).ok());
}

TEST_F(TrainingServiceTest, ListJobsFiltersByStateAndPages) {
  Start();
  const std::string running = StartLongJob();
  std::vector<std::string> queued;
  for (int i = 0; i < 3; ++i) queued.push_back(client_->SubmitOk(testing::MoonSpec("q", 1)));
  v1::Job job;
  ASSERT_TRUE(client_->Cancel(queued[0], &job).ok());

  const auto list = [&](v1::JobState state, int32_t size, const std::string& token,
                        v1::ListJobsResponse* response) {
    grpc::ClientContext context;
    client_->Prepare(&context);
    v1::ListJobsRequest request;
    request.set_state(state);
    request.set_page_size(size);
    request.set_page_token(token);
    return client_->training().ListJobs(&context, request, response);
  };
  v1::ListJobsResponse page;
  ASSERT_TRUE(list(v1::JOB_STATE_UNSPECIFIED, 3, "", &page).ok());
  ASSERT_EQ(page.jobs_size(), 3);
  EXPECT_EQ(page.jobs(0).id(), queued[2]);  // newest first
  ASSERT_FALSE(page.next_page_token().empty());
  v1::ListJobsResponse next;
  ASSERT_TRUE(list(v1::JOB_STATE_UNSPECIFIED, 3, page.next_page_token(), &next).ok());
  ASSERT_EQ(next.jobs_size(), 1);
  EXPECT_EQ(next.jobs(0).id(), running);
  EXPECT_TRUE(next.next_page_token().empty());

  ASSERT_TRUE(list(v1::JOB_STATE_QUEUED, 0, "", &page).ok());
  std::vector<std::string> ids;
  for (const v1::Job& j : page.jobs()) ids.push_back(j.id());
  EXPECT_THAT(ids, ElementsAre(queued[2], queued[1]));
  ASSERT_TRUE(list(v1::JOB_STATE_CANCELLED, 0, "", &page).ok());
  ASSERT_EQ(page.jobs_size(), 1);
  EXPECT_EQ(page.jobs(0).id(), queued[0]);
  EXPECT_EQ(list(v1::JOB_STATE_UNSPECIFIED, -1, "", &page).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(list(v1::JOB_STATE_UNSPECIFIED, 0, "garbage", &page).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(client_->Cancel(running, &job).ok());
}

}  // namespace
}  // namespace selene::api
