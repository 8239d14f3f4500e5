// Tests server/api/selene_server.h: the whole server in-process on a loopback port with real
// stubs. The full life cycle on synthetic data (a classifier, then an encoder U-Net over its
// frozen encoder; watch, artifacts, download, segment, classify, compare), health and reflection,
// bearer tokens and TLS, startup failures, and a graceful shutdown that ends watches with the
// sequence to resume from and requeues the running job, which a restarted server resumes; the
// drain itself (health NOT_SERVING first, new calls refused, calls in flight answered, the job
// checkpointed), synchronised with hooks; malformed request bodies named as such.
#include "server/api/selene_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/run_folder.h"
#include "common/sha256.h"
#include "server/jobs/job_runner.h"
#include "spec/json_io.h"
#include "tests/server/api/api_test_util.h"
#include "tests/server/serving/serving_test_models.h"
#include "tests/testing/files.h"

namespace selene::api {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsSupersetOf;
using ::testing::Not;
using testing::TestClient;

class SeleneServerTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::MakeTempDir("selene-selene-server"); }
  void TearDown() override {
    servers_.clear();
    fs::remove_all(dir_);
  }

  SeleneServer* StartServer(SeleneServerOptions options) {
    StatusOr<std::unique_ptr<SeleneServer>> server = SeleneServer::Start(std::move(options));
    EXPECT_TRUE(server.ok()) << server.status();
    if (!server.ok()) return nullptr;
    servers_.push_back(std::move(server).value());
    return servers_.back().get();
  }

  std::string dir_;
  std::vector<std::unique_ptr<SeleneServer>> servers_;
};

std::string Folder(const SeleneServer& server, const std::string& job_id) {
  return RunFolder::OfJob(server.options().state_dir, job_id).path();
}

// Events numbered 1, 2, 3, ... from `first`, without gaps.
void ExpectConsecutive(const std::vector<v1::JobEvent>& events, int64_t first) {
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].sequence(), first + static_cast<int64_t>(i));
  }
}

TEST_F(SeleneServerTest, TrainsAClassifierThenAnEncoderUNetOverItAndServesBoth) {
  SeleneServer* server = StartServer(testing::TestServerOptions(dir_));
  ASSERT_NE(server, nullptr);
  TestClient client(server->address());
  EXPECT_EQ(client.Health(""), 1);
  EXPECT_EQ(client.Health("selene.v1.TrainingService"), 1);
  EXPECT_EQ(client.Health("selene.v1.InferenceService"), 1);
  EXPECT_THAT(client.ReflectionServices(),
              IsSupersetOf({"selene.v1.TrainingService", "selene.v1.InferenceService",
                            "grpc.health.v1.Health"}));

  const std::string classifier = client.SubmitOk(testing::ClassifierSpec("shapes"));
  const std::string segmenter = client.SubmitOk(testing::EncoderUNetSpec("rocks", classifier));
  ASSERT_FALSE(classifier.empty());
  ASSERT_FALSE(segmenter.empty());

  // The segmenter's whole story, from submission (it waits for the classifier) to its end.
  grpc::Status watched;
  const std::vector<v1::JobEvent> events = client.Watch(segmenter, 0, &watched);
  ASSERT_TRUE(watched.ok()) << watched.error_message();
  ASSERT_FALSE(events.empty());
  ExpectConsecutive(events, 1);
  std::vector<std::string> states;
  std::vector<int64_t> epochs;
  int progress = 0;
  for (const v1::JobEvent& event : events) {
    EXPECT_EQ(event.job_id(), segmenter);
    if (event.has_state_change()) {
      states.push_back(testing::StateName(event.state_change().to_state()));
    } else if (event.has_epoch_end()) {
      epochs.push_back(event.epoch_end().epoch());
      EXPECT_EQ(event.epoch_end().epochs(), 2);
      EXPECT_EQ(event.epoch_end().monitor(), "dice");
      EXPECT_GT(event.epoch_end().images_per_second(), 0);
    } else if (event.has_step_progress()) {
      ++progress;
      const v1::StepProgress& step = event.step_progress();
      EXPECT_GE(step.eta_seconds(), 0.0);
      EXPECT_GT(step.images_per_second(), 0.0);
      EXPECT_GE(step.step(), 1);
      EXPECT_LE(step.step(), step.steps());
      EXPECT_EQ(states.size(), 2u);  // between RUNNING and SUCCEEDED
    }
  }
  EXPECT_THAT(states, ElementsAre("QUEUED", "RUNNING", "SUCCEEDED"));
  EXPECT_THAT(epochs, ElementsAre(1, 2));
  EXPECT_GT(progress, 0);
  EXPECT_TRUE(events.back().has_state_change());

  const v1::Job first = client.Get(classifier);
  const v1::Job second = client.Get(segmenter);
  ASSERT_EQ(first.state(), v1::JOB_STATE_SUCCEEDED) << first.error();
  EXPECT_EQ(second.depends_on(), classifier);
  EXPECT_EQ(second.last_event_sequence(), events.back().sequence());
  // It ran on the classifier's best checkpoint, frozen.
  StatusOr<v1::JobSpec> ran = spec::LoadJobSpecFile(RunFolder(Folder(*server, segmenter)).spec());
  ASSERT_TRUE(ran.ok()) << ran.status();
  EXPECT_EQ(ran->model().encoder_unet().encoder_checkpoint(),
            (fs::path(Folder(*server, classifier)) / "best.pt").string());
  EXPECT_EQ(ran->model().encoder_unet().encoder_mode(), v1::ENCODER_MODE_FROZEN);

  // Artifacts: each one's size and digest are the file's.
  v1::ListArtifactsResponse artifacts;
  {
    grpc::ClientContext context;
    client.Prepare(&context);
    v1::ListArtifactsRequest request;
    request.set_job_id(segmenter);
    ASSERT_TRUE(client.training().ListArtifacts(&context, request, &artifacts).ok());
  }
  std::vector<std::string> names;
  for (const v1::Artifact& artifact : artifacts.artifacts()) {
    names.push_back(artifact.name());
    const std::string bytes =
        testing::ReadFile((fs::path(Folder(*server, segmenter)) / artifact.name()).string());
    EXPECT_EQ(artifact.size_bytes(), static_cast<int64_t>(bytes.size())) << artifact.name();
    EXPECT_EQ(artifact.sha256(), Sha256Hex(bytes)) << artifact.name();
  }
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_THAT(names, IsSupersetOf({"best.pt", "last.pt", "history.csv", "metrics.json", "spec.json",
                                   "run_summary.json", "report.md"}));

  // best.pt downloaded whole, then resumed from the middle.
  const std::string best =
      testing::ReadFile((fs::path(Folder(*server, segmenter)) / "best.pt").string());
  std::vector<v1::ArtifactChunk> chunks;
  ASSERT_TRUE(client.Download(segmenter, "best.pt", 0, &chunks).ok());
  ASSERT_FALSE(chunks.empty());
  std::string downloaded;
  for (const v1::ArtifactChunk& chunk : chunks) {
    EXPECT_EQ(chunk.offset(), static_cast<int64_t>(downloaded.size()));
    EXPECT_EQ(chunk.total_size(), static_cast<int64_t>(best.size()));
    downloaded += chunk.data();
  }
  EXPECT_EQ(downloaded, best);
  EXPECT_EQ(chunks.front().sha256(), Sha256Hex(best));
  EXPECT_EQ(Sha256Hex(downloaded), chunks.front().sha256());
  const int64_t half = static_cast<int64_t>(best.size() / 2);
  chunks.clear();
  ASSERT_TRUE(client.Download(segmenter, "best.pt", half, &chunks).ok());
  std::string rest;
  for (const v1::ArtifactChunk& chunk : chunks) rest += chunk.data();
  EXPECT_EQ(chunks.front().offset(), half);
  EXPECT_EQ(best.substr(half), rest);

  // Segmentation of an image of another size, by alias and by job id: a mask of that size.
  const std::string png = serving::testing::EncodePng(serving::testing::TestImage(45, 29, 3, 7));
  v1::SegmentRequest segment;
  segment.set_model("latest:binary_segmentation");
  segment.set_image(png);
  v1::SegmentResponse by_alias;
  grpc::Status status = client.Segment(segment, &by_alias);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(by_alias.model_job_id(), segmenter);
  EXPECT_EQ(by_alias.task(), v1::TASK_BINARY_SEGMENTATION);
  EXPECT_EQ(by_alias.width(), 45);
  EXPECT_EQ(by_alias.height(), 29);
  const cv::Mat mask = serving::testing::DecodeGreyPng(by_alias.mask_png());
  EXPECT_EQ(mask.cols, 45);
  EXPECT_EQ(mask.rows, 29);
  // The share of the mask's pixels that are foreground (non-zero).
  EXPECT_DOUBLE_EQ(by_alias.foreground_fraction(),
                   cv::countNonZero(mask) / static_cast<double>(mask.total()));
  segment.set_model(segmenter);
  v1::SegmentResponse by_id;
  ASSERT_TRUE(client.Segment(segment, &by_id).ok());
  EXPECT_EQ(by_id.mask_png(), by_alias.mask_png());

  v1::ClassifyRequest classify;
  classify.set_model(classifier);
  classify.set_image(serving::testing::EncodePng(serving::testing::TestImage(50, 40, 3, 3)));
  classify.set_top_k(3);
  v1::ClassifyResponse labels;
  status = client.Classify(classify, &labels);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(labels.model_job_id(), classifier);
  ASSERT_EQ(labels.labels_size(), 3);
  double total = 0.0;
  for (int i = 0; i < labels.labels_size(); ++i) {
    total += labels.labels(i).probability();
    if (i > 0) {
      EXPECT_GE(labels.labels(i - 1).probability(), labels.labels(i).probability());
    }
    EXPECT_FALSE(labels.labels(i).label().empty());
  }
  EXPECT_LE(total, 1.0 + 1e-9);

  // Both models listed, newest first, with their aliases.
  v1::ListModelsResponse models;
  {
    grpc::ClientContext context;
    client.Prepare(&context);
    ASSERT_TRUE(client.inference().ListModels(&context, v1::ListModelsRequest(), &models).ok());
  }
  ASSERT_EQ(models.models_size(), 2);
  EXPECT_EQ(models.models(0).job_id(), segmenter);
  EXPECT_THAT(models.models(0).aliases(), IsSupersetOf({"latest", "latest:binary_segmentation"}));
  EXPECT_EQ(models.models(1).job_id(), classifier);
  EXPECT_THAT(models.models(1).aliases(), ElementsAre("latest:classification"));

  // The two runs side by side.
  v1::CompareJobsResponse compared;
  {
    grpc::ClientContext context;
    client.Prepare(&context);
    v1::CompareJobsRequest request;
    request.add_job_ids(classifier);
    request.add_job_ids(segmenter);
    ASSERT_TRUE(client.training().CompareJobs(&context, request, &compared).ok());
  }
  ASSERT_EQ(compared.jobs_size(), 2);
  EXPECT_EQ(compared.jobs(0).job_id(), classifier);
  EXPECT_EQ(compared.jobs(1).summary().model_family(), "encoder_unet");
  EXPECT_EQ(compared.jobs(1).summary().encoder_mode(), "frozen");
  EXPECT_THAT(compared.markdown(), HasSubstr("shapes"));
  EXPECT_THAT(compared.markdown(), HasSubstr("rocks"));
}

TEST_F(SeleneServerTest, BearerTokensGuardTheSeleneServicesButNotHealthOrReflection) {
  const std::string tokens = (fs::path(dir_) / "tokens").string();
  std::ofstream(tokens) << "# clients\ns3cret\n";
  SeleneServerOptions options = testing::TestServerOptions(dir_);
  options.token_file = tokens;
  SeleneServer* server = StartServer(options);
  ASSERT_NE(server, nullptr);
  TestClient anonymous(server->address());
  TestClient wrong(server->address(), "guess");
  TestClient good(server->address(), "s3cret");

  const std::string missing = "missing bearer token (authorization: Bearer ...)";
  v1::Job job;
  grpc::Status status = anonymous.GetJob("job-1", &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(status.error_message(), missing);
  status = wrong.GetJob("job-1", &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(status.error_message(), "invalid bearer token");
  v1::SubmitJobResponse submitted;
  EXPECT_EQ(anonymous.Submit(testing::MoonSpec("m", 1), &submitted).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  grpc::Status watched;
  EXPECT_TRUE(anonymous.Watch("job-1", 0, &watched).empty());
  EXPECT_EQ(watched.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  std::vector<v1::ArtifactChunk> chunks;
  EXPECT_EQ(wrong.Download("job-1", "best.pt", 0, &chunks).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  v1::SegmentRequest segment;
  segment.set_model("latest");
  v1::SegmentResponse segmented;
  status = anonymous.Segment(segment, &segmented);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(status.error_message(), missing);
  v1::ClassifyRequest classify;
  v1::ClassifyResponse classified;
  EXPECT_EQ(wrong.Classify(classify, &classified).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  {
    grpc::ClientContext context;
    anonymous.Prepare(&context);
    v1::ListModelsResponse models;
    EXPECT_EQ(anonymous.inference().ListModels(&context, {}, &models).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }

  // Health and reflection need no token.
  EXPECT_EQ(anonymous.Health(""), 1);
  EXPECT_THAT(anonymous.ReflectionServices(), IsSupersetOf({"selene.v1.TrainingService"}));

  // The right token works, right after the refusals.
  const std::string id = good.SubmitOk(testing::MoonSpec("m", 1));
  EXPECT_EQ(good.Get(id).id(), id);
  status = good.GetJob("job-99", &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  {
    grpc::ClientContext context;
    good.Prepare(&context);
    v1::ListModelsResponse models;
    EXPECT_TRUE(good.inference().ListModels(&context, {}, &models).ok());
  }
}

TEST_F(SeleneServerTest, ServesOverTlsWithTheGivenCertificate) {
  const fs::path cert = fs::path(dir_) / "cert.pem";
  const fs::path key = fs::path(dir_) / "key.pem";
  const std::string command = absl::StrCat(
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
      "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout ",
      key.string(), " -out ", cert.string(), " > /dev/null 2>&1");
  if (std::system(command.c_str()) != 0) GTEST_SKIP() << "openssl cannot make a certificate";
  SeleneServerOptions options = testing::TestServerOptions(dir_);
  options.tls_cert_file = cert.string();
  options.tls_key_file = key.string();
  SeleneServer* server = StartServer(options);
  ASSERT_NE(server, nullptr);

  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = testing::ReadFile(cert.string());
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("localhost");
  TestClient secure(grpc::CreateCustomChannel(server->address(), grpc::SslCredentials(ssl), args),
                    "");
  v1::Job job;
  EXPECT_EQ(secure.GetJob("job-5", &job).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(secure.Health(""), 1);

  TestClient plain(server->address());
  grpc::ClientContext context;
  plain.Prepare(&context, absl::Seconds(3));
  v1::GetJobRequest request;
  request.set_job_id("job-5");
  EXPECT_EQ(plain.training().GetJob(&context, request, &job).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(SeleneServerTest, StartupFailuresNameTheProblem) {
  SeleneServer* first = StartServer(testing::TestServerOptions(dir_));
  ASSERT_NE(first, nullptr);

  // The port is taken.
  SeleneServerOptions options = testing::TestServerOptions(dir_ + "/other");
  options.listen = first->address();
  StatusOr<std::unique_ptr<SeleneServer>> second = SeleneServer::Start(options);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr("cannot listen on " + first->address()));

  // The state dir is taken.
  second = SeleneServer::Start(testing::TestServerOptions(dir_));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr("in use by another selene-server"));

  // A state dir that cannot be created (a file is in the way).
  std::ofstream(dir_ + "/plain-file") << "x";
  options = testing::TestServerOptions(dir_ + "/third");
  options.state_dir = dir_ + "/plain-file/state";
  second = SeleneServer::Start(options);
  EXPECT_NE(second.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(second.status().message(), HasSubstr(options.state_dir));

  // A job store that is not one.
  options = testing::TestServerOptions(dir_ + "/fourth");
  fs::create_directories(options.state_dir);
  const std::string db = options.state_dir + "/selene.db";
  std::ofstream(db) << std::string(4096, 'z');
  second = SeleneServer::Start(options);
  EXPECT_FALSE(second.ok());
  EXPECT_NE(second.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(second.status().message(), HasSubstr(db));

  // Bad options are InvalidArgument naming the flag or file.
  options = testing::TestServerOptions(dir_ + "/fifth");
  options.tls_cert_file = dir_ + "/missing-cert.pem";
  second = SeleneServer::Start(options);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(second.status().message(), HasSubstr("--tls_cert and --tls_key go together"));
  options.tls_key_file = dir_ + "/missing-key.pem";
  second = SeleneServer::Start(options);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(second.status().message(), HasSubstr(dir_ + "/missing-cert.pem"));
  options = testing::TestServerOptions(dir_ + "/fifth");
  std::ofstream(dir_ + "/empty-tokens") << "\n# none\n";
  options.token_file = dir_ + "/empty-tokens";
  second = SeleneServer::Start(options);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(second.status().message(), HasSubstr(dir_ + "/empty-tokens"));
  options = testing::TestServerOptions(dir_ + "/fifth");
  options.devices = {"gpu7"};
  second = SeleneServer::Start(options);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(second.status().message(), HasSubstr("gpu7"));
  options = testing::TestServerOptions(dir_ + "/fifth");
  options.queue_limit = 0;
  second = SeleneServer::Start(options);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(second.status().message(), HasSubstr("--queue_limit"));
  options = testing::TestServerOptions(dir_ + "/fifth");
  options.inference_precision = "fp16";
  second = SeleneServer::Start(options);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(second.status().message(),
              HasSubstr("--inference_precision: \"fp16\" is not fp32 or bf16"));

  options = testing::TestServerOptions(dir_ + "/fifth");
  options.metrics_listen = "nonsense";
  second = SeleneServer::Start(options);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(second.status().message(), HasSubstr("--metrics_listen: metrics address 'nonsense'"));

  // The metrics port is taken (by a server with metrics on port 0).
  options = testing::TestServerOptions(dir_ + "/sixth");
  options.metrics_listen = "127.0.0.1:0";
  SeleneServer* with_metrics = StartServer(options);
  ASSERT_NE(with_metrics, nullptr);
  options = testing::TestServerOptions(dir_ + "/seventh");
  options.metrics_listen = with_metrics->metrics_address();
  second = SeleneServer::Start(options);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(),
              HasSubstr("cannot listen for metrics on " + with_metrics->metrics_address()));

  // The first server never noticed.
  TestClient client(first->address());
  EXPECT_EQ(client.Health(""), 1);
}

TEST_F(SeleneServerTest, ShutdownEndsWatchesAtTheirSequenceAndARestartResumesTheJob) {
  SeleneServerOptions options = testing::TestServerOptions(dir_);
  SeleneServer* server = StartServer(options);
  ASSERT_NE(server, nullptr);
  TestClient client(server->address());
  const std::string id = client.SubmitOk(testing::MoonSpec("long", 500));
  client.WaitFor(id, [](const v1::Job& job) { return job.current_epoch() >= 2; });

  std::vector<v1::JobEvent> events;
  grpc::Status watched;
  std::thread watcher([&] { events = client.Watch(id, 0, &watched); });
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (server->training_service().active_watches() == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  absl::SleepFor(absl::Milliseconds(300));  // some events on the wire
  EXPECT_TRUE(server->Shutdown().ok());
  watcher.join();
  EXPECT_EQ(watched.error_code(), grpc::StatusCode::UNAVAILABLE);
  ASSERT_FALSE(events.empty());
  ExpectConsecutive(events, 1);
  EXPECT_EQ(
      watched.error_message(),
      absl::StrCat("server shutting down; watch again from sequence ", events.back().sequence()));

  // The running job checkpointed and went back to the queue.
  StatusOr<v1::Job> stopped = server->store().Get(id);
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ(stopped->state(), v1::JOB_STATE_QUEUED);
  EXPECT_TRUE(stopped->resume_from_checkpoint());
  EXPECT_TRUE(fs::exists(fs::path(Folder(*server, id)) / "last.pt"));
  const int64_t epochs_before = stopped->current_epoch();
  const int64_t sequence_before = stopped->last_event_sequence();
  servers_.clear();

  // A new server on the same state dir resumes it where it stopped.
  server = StartServer(options);
  ASSERT_NE(server, nullptr);
  TestClient again(server->address());
  again.WaitFor(id, [&](const v1::Job& job) { return job.current_epoch() > epochs_before; });
  int64_t first_epoch_after = 0;
  std::vector<std::string> reasons;
  StatusOr<std::vector<v1::JobEvent>> later = server->store().Events(id, 0);
  ASSERT_TRUE(later.ok());
  for (const v1::JobEvent& event : *later) {
    if (event.has_state_change()) reasons.push_back(event.state_change().reason());
    if (event.sequence() > sequence_before && event.has_epoch_end() && first_epoch_after == 0) {
      first_epoch_after = event.epoch_end().epoch();
    }
  }
  EXPECT_EQ(first_epoch_after, epochs_before + 1);
  EXPECT_THAT(reasons, IsSupersetOf({std::string(jobs::Scheduler::kShutdownReason)}));
  v1::Job cancelled;
  EXPECT_TRUE(again.Cancel(id, &cancelled).ok());
}

// The drain, step by step, each step waited for by a hook rather than a sleep: segmentation calls
// on a large image are held in the model's batcher (so they are in flight when the drain begins,
// whatever the machine's speed) while the test checks what a client sees; then they are let go.
TEST_F(SeleneServerTest, ShutdownAnswersCallsInFlightAndRefusesNewOnesAfterHealthSaysNotServing) {
  // Shared with the server's batchers, which outlive the test body.
  struct BatchHold {
    std::atomic<bool> armed{false};
    absl::Notification released;
  };
  const auto hold = std::make_shared<BatchHold>();
  SeleneServerOptions options = testing::TestServerOptions(dir_);
  // The drain ends when the held calls are answered, long before this: no deadline in play.
  options.shutdown_grace = absl::Minutes(5);
  options.max_batch_size = 8;
  options.inference_workers = 8;
  options.batcher_before_batch = [hold](int) {
    if (hold->armed) hold->released.WaitForNotification();
  };
  SeleneServer* server = StartServer(options);
  ASSERT_NE(server, nullptr);
  TestClient client(server->address());
  const std::string model = client.SubmitOk(testing::MoonSpec("rocks", 2));
  ASSERT_EQ(client.WaitTerminal(model).state(), v1::JOB_STATE_SUCCEEDED);
  // Still training when the stop comes, however long the calls below take.
  const std::string running = client.SubmitOk(testing::MoonSpec("long", 100000));
  client.WaitFor(running, [](const v1::Job& job) { return job.current_epoch() >= 1; });

  // What each held call must answer: the same request, served alone beforehand.
  constexpr int kCalls = 4;
  std::vector<v1::SegmentRequest> requests(kCalls);
  std::vector<v1::SegmentResponse> expected(kCalls);
  for (int i = 0; i < kCalls; ++i) {
    requests[i].set_model(model);
    requests[i].set_image(
        serving::testing::EncodePng(serving::testing::TestImage(2048, 2048 - 64 * i, 3, 20 + i)));
    const grpc::Status status = client.Segment(requests[i], &expected[i]);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  // Open before the stop: a job watch, a health watch, and a call whose body has not come yet.
  grpc::ClientContext watch_context;
  client.Prepare(&watch_context, absl::Minutes(5));
  v1::WatchJobRequest watch_request;
  watch_request.set_job_id(running);
  std::unique_ptr<grpc::ClientReader<v1::JobEvent>> job_watch =
      client.training().WatchJob(&watch_context, watch_request);
  v1::JobEvent event;
  ASSERT_TRUE(job_watch->Read(&event));  // the watch is registered
  testing::HealthWatch health(client.channel(), "");
  ASSERT_EQ(health.Next(), 1);  // SERVING
  testing::RawCall late(client.channel(), "/selene.v1.InferenceService/Segment");

  hold->armed = true;
  std::vector<v1::SegmentResponse> answers(kCalls);
  std::vector<grpc::Status> statuses(kCalls);
  std::vector<std::thread> calls;
  Status stopped = InternalError("Shutdown did not return");
  std::thread stopper;
  // Whatever fails below, the held calls are let go and every thread is joined.
  const auto release = [&] {
    if (!hold->released.HasBeenNotified()) hold->released.Notify();
    for (std::thread& call : calls) {
      if (call.joinable()) call.join();
    }
    if (stopper.joinable()) stopper.join();
  };
  absl::Cleanup release_on_exit = release;
  for (int i = 0; i < kCalls; ++i) {
    calls.emplace_back([&, i] { statuses[i] = client.Segment(requests[i], &answers[i]); });
  }
  ASSERT_TRUE(server->inference_calls().AwaitInFlight(kCalls, absl::Now() + absl::Minutes(2)));

  stopper = std::thread([&] { stopped = server->Shutdown(); });
  // Health goes first, to open watches as well as to Check.
  EXPECT_EQ(health.Next(), 2);  // NOT_SERVING
  // Job watches end once both services refuse new calls.
  while (job_watch->Read(&event)) {
  }
  const grpc::Status watch_end = job_watch->Finish();
  EXPECT_EQ(watch_end.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(watch_end.error_message(), HasSubstr("watch again from sequence"));
  EXPECT_EQ(client.Health(""), 2);  // the listener still answers, NOT_SERVING
  EXPECT_EQ(client.Health("selene.v1.InferenceService"), 2);

  // New calls are refused, saying why; so is the one whose request arrives only now (gRPC's own
  // shutdown would have cancelled it without a word).
  v1::SegmentResponse refused;
  grpc::Status status = client.Segment(requests[0], &refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(status.error_message(), "selene-server is shutting down");
  v1::Job job;
  status = client.GetJob(running, &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(status.error_message(), "selene-server is shutting down");
  status = late.Send(requests[1].SerializeAsString());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(status.error_message(), "selene-server is shutting down");
  EXPECT_EQ(server->inference_calls().in_flight(), kCalls);  // none of them cancelled

  // Let the held calls go: every one is answered, as it would have been without the stop.
  release();
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_TRUE(statuses[i].ok()) << i << ": " << statuses[i].error_code() << " "
                                  << statuses[i].error_message();
    EXPECT_EQ(answers[i].width(), 2048);
    EXPECT_EQ(answers[i].height(), 2048 - 64 * i);
    EXPECT_EQ(answers[i].mask_png(), expected[i].mask_png()) << i;
  }
  EXPECT_TRUE(stopped.ok()) << stopped;
  // The health watch was cut when the listener closed, not left to hold the stop until the
  // grace deadline (or until its own deadline, which would end it DEADLINE_EXCEEDED).
  EXPECT_EQ(health.Next(), -1);
  const grpc::Status health_end = health.Finish();
  EXPECT_NE(health_end.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << health_end.error_message();

  // The job that was training checkpointed and went back to the queue.
  StatusOr<v1::Job> requeued = server->store().Get(running);
  ASSERT_TRUE(requeued.ok()) << requeued.status();
  EXPECT_EQ(requeued->state(), v1::JOB_STATE_QUEUED);
  EXPECT_TRUE(requeued->resume_from_checkpoint());
  EXPECT_TRUE(fs::exists(fs::path(Folder(*server, running)) / "last.pt"));
}

// gRPC 1.51 parses the request before the handler and answers a body that does not parse with
// UNIMPLEMENTED and no message; the server says INVALID_ARGUMENT and names the message it expected.
TEST_F(SeleneServerTest, AMalformedRequestBodyIsInvalidArgumentNamingTheExpectedMessage) {
  SeleneServer* server = StartServer(testing::TestServerOptions(dir_));
  ASSERT_NE(server, nullptr);
  TestClient client(server->address());
  // Field 13 with wire type 6, which does not exist: no protobuf parser takes it.
  const std::string garbage = "not a protobuf";

  grpc::Status status =
      testing::RawCall(client.channel(), "/selene.v1.InferenceService/Segment").Send(garbage);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "request body is not a valid selene.v1.SegmentRequest");
  status = testing::RawCall(client.channel(), "/selene.v1.TrainingService/GetJob").Send(garbage);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "request body is not a valid selene.v1.GetJobRequest");
  // A server stream too.
  status = testing::RawCall(client.channel(), "/selene.v1.TrainingService/WatchJob").Send(garbage);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "request body is not a valid selene.v1.WatchJobRequest");
  // What the body check leaves alone: a method that does not exist, and a valid body.
  status = testing::RawCall(client.channel(), "/selene.v1.InferenceService/Paint").Send(garbage);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  v1::GetJobRequest get;
  get.set_job_id("job-404");
  status = testing::RawCall(client.channel(), "/selene.v1.TrainingService/GetJob")
               .Send(get.SerializeAsString());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);

  // The metrics count the code the client got.
  EXPECT_THAT(server->metrics().Scrape(),
              HasSubstr("grpc_method=\"Segment\",grpc_code=\"INVALID_ARGUMENT\"} 1"));
  EXPECT_EQ(client.Health(""), 1);
}

}  // namespace
}  // namespace selene::api
