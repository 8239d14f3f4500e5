#include "tests/server/api/api_test_util.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/impl/rpc_method.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/sync_stream.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/wire_format_lite.h"

namespace selene::api::testing {
namespace {

namespace fs = std::filesystem;
using ::google::protobuf::internal::WireFormatLite;

grpc::ByteBuffer ToByteBuffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

std::string FromByteBuffer(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (!buffer.Dump(&slices).ok()) return bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return bytes;
}

// Appends a length-delimited protobuf field.
void AppendBytesField(int field, const std::string& value, std::string* out) {
  std::string encoded;
  {
    google::protobuf::io::StringOutputStream stream(&encoded);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.WriteTag(WireFormatLite::MakeTag(field, WireFormatLite::WIRETYPE_LENGTH_DELIMITED));
    coded.WriteVarint32(static_cast<uint32_t>(value.size()));
    coded.WriteString(value);
  }
  out->append(encoded);
}

// HealthCheckResponse { ServingStatus status = 1; }: absent = 0 (UNKNOWN); -1 when unreadable.
int ServingStatusOf(const std::string& bytes) {
  google::protobuf::io::CodedInputStream input(reinterpret_cast<const uint8_t*>(bytes.data()),
                                               static_cast<int>(bytes.size()));
  int serving = 0;
  while (const uint32_t tag = input.ReadTag()) {
    if (WireFormatLite::GetTagFieldNumber(tag) == 1) {
      uint32_t value = 0;
      if (!input.ReadVarint32(&value)) return -1;
      serving = static_cast<int>(value);
    } else if (!WireFormatLite::SkipField(&input, tag)) {
      return -1;
    }
  }
  return serving;
}

}  // namespace

SeleneServerOptions TestServerOptions(const std::string& dir) {
  SeleneServerOptions options;
  options.listen = "127.0.0.1:0";
  options.http_listen = "127.0.0.1:0";  // REST v2 too, on a port of its own
  options.state_dir = (fs::path(dir) / "state").string();
  options.data_root = (fs::path(dir) / "data").string();
  fs::create_directories(options.data_root);
  options.devices = {"cpu"};
  options.training_threads = 1;
  options.progress_interval = absl::Milliseconds(50);
  options.scheduler_poll = absl::Milliseconds(50);
  options.shutdown_grace = absl::Seconds(5);
  return options;
}

bool IsTerminal(v1::JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
         state == v1::JOB_STATE_CANCELLED;
}

std::string StateName(v1::JobState state) {
  return std::string(absl::StripPrefix(v1::JobState_Name(state), "JOB_STATE_"));
}

TestClient::TestClient(const std::string& address, std::string token)
    : TestClient(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()),
                 std::move(token)) {}

TestClient::TestClient(std::shared_ptr<grpc::Channel> channel, std::string token)
    : channel_(std::move(channel)),
      token_(std::move(token)),
      training_(v1::TrainingService::NewStub(channel_)),
      inference_(v1::InferenceService::NewStub(channel_)) {}

void TestClient::Prepare(grpc::ClientContext* context, absl::Duration timeout) const {
  if (!token_.empty()) context->AddMetadata("authorization", "Bearer " + token_);
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

grpc::Status TestClient::Submit(const v1::JobSpec& spec, v1::SubmitJobResponse* response,
                                const std::string& request_id, int32_t priority) {
  grpc::ClientContext context;
  Prepare(&context);
  v1::SubmitJobRequest request;
  *request.mutable_spec() = spec;
  request.set_request_id(request_id);
  request.set_priority(priority);
  return training_->SubmitJob(&context, request, response);
}

std::string TestClient::SubmitOk(const v1::JobSpec& spec, const std::string& request_id) {
  v1::SubmitJobResponse response;
  const grpc::Status status = Submit(spec, &response, request_id);
  EXPECT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();
  return response.job().id();
}

grpc::Status TestClient::GetJob(const std::string& id, v1::Job* job) {
  grpc::ClientContext context;
  Prepare(&context);
  v1::GetJobRequest request;
  request.set_job_id(id);
  return training_->GetJob(&context, request, job);
}

v1::Job TestClient::Get(const std::string& id) {
  v1::Job job;
  const grpc::Status status = GetJob(id, &job);
  EXPECT_TRUE(status.ok()) << id << ": " << status.error_message();
  return job;
}

grpc::Status TestClient::Cancel(const std::string& id, v1::Job* job, const std::string& reason) {
  grpc::ClientContext context;
  Prepare(&context);
  v1::CancelJobRequest request;
  request.set_job_id(id);
  request.set_reason(reason);
  return training_->CancelJob(&context, request, job);
}

v1::Job TestClient::WaitFor(const std::string& id, const std::function<bool(const v1::Job&)>& done,
                            absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    v1::Job job;
    const grpc::Status status = GetJob(id, &job);
    if (status.ok() && done(job)) return job;
    if (absl::Now() > deadline) {
      ADD_FAILURE() << "timed out waiting for " << id << ": " << job.ShortDebugString() << " "
                    << status.error_message();
      return job;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
}

v1::Job TestClient::WaitTerminal(const std::string& id, absl::Duration timeout) {
  return WaitFor(
      id, [](const v1::Job& job) { return IsTerminal(job.state()); }, timeout);
}

std::vector<v1::JobEvent> TestClient::Watch(const std::string& id, int64_t after_sequence,
                                            grpc::Status* status, absl::Duration timeout) {
  grpc::ClientContext context;
  Prepare(&context, timeout);
  v1::WatchJobRequest request;
  request.set_job_id(id);
  request.set_after_sequence(after_sequence);
  std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader = training_->WatchJob(&context, request);
  std::vector<v1::JobEvent> events;
  v1::JobEvent event;
  while (reader->Read(&event)) events.push_back(event);
  *status = reader->Finish();
  return events;
}

grpc::Status TestClient::Download(const std::string& id, const std::string& name, int64_t offset,
                                  std::vector<v1::ArtifactChunk>* chunks) {
  grpc::ClientContext context;
  Prepare(&context);
  v1::DownloadArtifactRequest request;
  request.set_job_id(id);
  request.set_name(name);
  request.set_offset(offset);
  std::unique_ptr<grpc::ClientReader<v1::ArtifactChunk>> reader =
      training_->DownloadArtifact(&context, request);
  v1::ArtifactChunk chunk;
  while (reader->Read(&chunk)) chunks->push_back(chunk);
  return reader->Finish();
}

grpc::Status TestClient::Segment(const v1::SegmentRequest& request, v1::SegmentResponse* response) {
  grpc::ClientContext context;
  Prepare(&context);
  return inference_->Segment(&context, request, response);
}

grpc::Status TestClient::Classify(const v1::ClassifyRequest& request,
                                  v1::ClassifyResponse* response) {
  grpc::ClientContext context;
  Prepare(&context);
  return inference_->Classify(&context, request, response);
}

int TestClient::Health(const std::string& service, grpc::Status* status) {
  grpc::GenericStub stub(channel_);
  std::string request;  // grpc.health.v1.HealthCheckRequest
  if (!service.empty()) AppendBytesField(1, service, &request);
  const grpc::ByteBuffer request_buffer = ToByteBuffer(request);
  grpc::ByteBuffer response_buffer;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request_buffer,
                 &response_buffer, [&done](grpc::Status s) { done.set_value(std::move(s)); });
  const grpc::Status result = done.get_future().get();
  if (status != nullptr) *status = result;
  if (!result.ok()) return -1;
  return ServingStatusOf(FromByteBuffer(response_buffer));
}

HealthWatch::HealthWatch(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
                         absl::Duration timeout) {
  context_.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  std::string request;  // grpc.health.v1.HealthCheckRequest
  if (!service.empty()) AppendBytesField(1, service, &request);
  const grpc::internal::RpcMethod method("/grpc.health.v1.Health/Watch",
                                         grpc::internal::RpcMethod::SERVER_STREAMING);
  reader_.reset(grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(
      channel.get(), method, &context_, ToByteBuffer(request)));
}

int HealthWatch::Next() {
  grpc::ByteBuffer response;
  if (!reader_->Read(&response)) return -1;
  return ServingStatusOf(FromByteBuffer(response));
}

grpc::Status HealthWatch::Finish() { return reader_->Finish(); }

RawCall::RawCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                 absl::Duration timeout)
    : method_(method) {
  context_.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  // A bidirectional stream on the wire is what a unary call is too; only the server's
  // registration of the method says how many messages it takes.
  const grpc::internal::RpcMethod rpc(method_.c_str(), grpc::internal::RpcMethod::BIDI_STREAMING);
  stream_.reset(
      grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(
          channel.get(), rpc, &context_));
}

grpc::Status RawCall::Send(const std::string& body, std::string* response) {
  stream_->Write(ToByteBuffer(body));
  stream_->WritesDone();
  grpc::ByteBuffer reply;
  const bool replied = stream_->Read(&reply);
  if (response != nullptr) *response = replied ? FromByteBuffer(reply) : "";
  return stream_->Finish();
}

std::vector<std::string> TestClient::ReflectionServices() {
  std::vector<std::string> names;
  grpc::GenericStub stub(channel_);
  grpc::CompletionQueue queue;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call = stub.PrepareCall(
      &context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &queue);
  void* tag = nullptr;
  bool ok = false;
  const auto step = [&](intptr_t expected) {
    return queue.Next(&tag, &ok) && ok && reinterpret_cast<intptr_t>(tag) == expected;
  };
  std::string request;  // ServerReflectionRequest { string list_services = 7; }
  AppendBytesField(7, "", &request);
  grpc::ByteBuffer response;
  grpc::Status status;
  call->StartCall(reinterpret_cast<void*>(1));
  bool good = step(1);
  if (good) {
    call->Write(ToByteBuffer(request), reinterpret_cast<void*>(2));
    good = step(2);
  }
  if (good) {
    call->WritesDone(reinterpret_cast<void*>(3));
    good = step(3);
  }
  if (good) {
    call->Read(&response, reinterpret_cast<void*>(4));
    good = step(4);
  }
  call->Finish(&status, reinterpret_cast<void*>(5));
  while (queue.Next(&tag, &ok) && reinterpret_cast<intptr_t>(tag) != 5) {
  }
  queue.Shutdown();
  while (queue.Next(&tag, &ok)) {
  }
  if (!good) return names;

  // ServerReflectionResponse { ListServiceResponse list_services_response = 6; }
  // ListServiceResponse { repeated ServiceResponse service = 1; } ServiceResponse { name = 1; }
  const std::string bytes = FromByteBuffer(response);
  const auto submessages = [](const std::string& message, int field) {
    std::vector<std::string> found;
    google::protobuf::io::CodedInputStream input(reinterpret_cast<const uint8_t*>(message.data()),
                                                 static_cast<int>(message.size()));
    while (const uint32_t tag = input.ReadTag()) {
      if (WireFormatLite::GetTagFieldNumber(tag) == field &&
          WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
        uint32_t length = 0;
        std::string value;
        if (!input.ReadVarint32(&length) || !input.ReadString(&value, static_cast<int>(length))) {
          break;
        }
        found.push_back(value);
      } else if (!WireFormatLite::SkipField(&input, tag)) {
        break;
      }
    }
    return found;
  };
  for (const std::string& list : submessages(bytes, 6)) {
    for (const std::string& service : submessages(list, 1)) {
      for (const std::string& name : submessages(service, 1)) names.push_back(name);
    }
  }
  return names;
}

}  // namespace selene::api::testing
