// Shared by the API tests: tiny synthetic job specs, a temporary folder per test, server options
// for an in-process selene server on a loopback port, and a client with real stubs (bearer
// token, deadlines, watch and download helpers, the standard health check over a generic stub).
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "selene/v1/inference_service.grpc.pb.h"
#include "selene/v1/job_spec.pb.h"
#include "selene/v1/training_service.grpc.pb.h"
#include "server/api/selene_server.h"
#include "tests/testing/files.h"
#include "tests/testing/tiny_job_specs.h"

namespace selene::api::testing {

// Options for an in-process server under `dir` (state in dir/state, data root dir/data, created):
// 127.0.0.1 on a free port (REST v2 on another), one CPU slot, one training thread, progress every
// 50 ms, quick scheduler polling and a short shutdown grace.
SeleneServerOptions TestServerOptions(const std::string& dir);

using ::selene::testing::MakeTempDir;  // tests/testing/files.h

// Tiny specs that train in about a second on one core.
using ::selene::testing::ClassifierSpec;  // tests/testing/tiny_job_specs.h
using ::selene::testing::EncoderUNetSpec;
using ::selene::testing::MoonSpec;

bool IsTerminal(v1::JobState state);
std::string StateName(v1::JobState state);

// Real stubs on a channel to `address`; every call carries the token (if any) and a deadline.
class TestClient {
 public:
  explicit TestClient(const std::string& address, std::string token = "");
  TestClient(std::shared_ptr<grpc::Channel> channel, std::string token);

  // Adds authorization and a deadline `timeout` from now.
  void Prepare(grpc::ClientContext* context, absl::Duration timeout = absl::Seconds(60)) const;

  grpc::Status Submit(const v1::JobSpec& spec, v1::SubmitJobResponse* response,
                      const std::string& request_id = "", int32_t priority = 0);
  // Submits and returns the job id; fails the test on an error.
  std::string SubmitOk(const v1::JobSpec& spec, const std::string& request_id = "");
  grpc::Status GetJob(const std::string& id, v1::Job* job);
  v1::Job Get(const std::string& id);  // fails the test on an error
  grpc::Status Cancel(const std::string& id, v1::Job* job, const std::string& reason = "");

  // Polls GetJob until `done` holds; fails the test after `timeout`.
  v1::Job WaitFor(const std::string& id, const std::function<bool(const v1::Job&)>& done,
                  absl::Duration timeout = absl::Seconds(90));
  v1::Job WaitTerminal(const std::string& id, absl::Duration timeout = absl::Seconds(90));

  // The whole WatchJob stream; `status` gets how it ended.
  std::vector<v1::JobEvent> Watch(const std::string& id, int64_t after_sequence,
                                  grpc::Status* status, absl::Duration timeout = absl::Seconds(90));

  // Downloads one artifact from `offset`; the chunks as they came.
  grpc::Status Download(const std::string& id, const std::string& name, int64_t offset,
                        std::vector<v1::ArtifactChunk>* chunks);

  grpc::Status Segment(const v1::SegmentRequest& request, v1::SegmentResponse* response);
  grpc::Status Classify(const v1::ClassifyRequest& request, v1::ClassifyResponse* response);

  // grpc.health.v1.Health/Check for `service` ("" = the server): 1 SERVING, 2 NOT_SERVING,
  // 3 SERVICE_UNKNOWN, 0 UNKNOWN; -1 when the call failed (`status` says why). No token sent.
  int Health(const std::string& service, grpc::Status* status = nullptr);

  // Names from grpc.reflection.v1alpha.ServerReflection list_services; empty on failure.
  std::vector<std::string> ReflectionServices();

  v1::TrainingService::Stub& training() { return *training_; }
  v1::InferenceService::Stub& inference() { return *inference_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::string token_;
  std::unique_ptr<v1::TrainingService::Stub> training_;
  std::unique_ptr<v1::InferenceService::Stub> inference_;
};

// An open grpc.health.v1.Health/Watch stream for `service` ("" = the server), read on demand.
class HealthWatch {
 public:
  HealthWatch(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
              absl::Duration timeout = absl::Seconds(120));
  // The next status the server sends (1 SERVING, 2 NOT_SERVING, ...); -1 once the stream ended.
  int Next();
  // How the stream ended (after Next returned -1).
  grpc::Status Finish();

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> reader_;
};

// One call of any method with a raw request body, as a client with other (or broken) generated
// code would send it: the headers go out at construction, the body only with Send, so a test can
// hold a call whose request has not arrived yet.
class RawCall {
 public:
  // `method`: "/package.Service/Method".
  RawCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
          absl::Duration timeout = absl::Seconds(60));
  // Sends `body` as the one request message and half-closes; returns how the call ended and,
  // in `response`, the raw reply (of a unary method; "" when none).
  grpc::Status Send(const std::string& body, std::string* response = nullptr);

 private:
  const std::string method_;  // gRPC may keep pointing at the name
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>> stream_;
};

using ::selene::testing::ReadFile;  // tests/testing/files.h

}  // namespace selene::api::testing
