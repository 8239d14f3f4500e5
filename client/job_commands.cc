// submit, get, list, cancel, compare and health: one RPC each (submit retries once).
#include <google/protobuf/util/json_util.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>

#include <future>
#include <iostream>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "client/commands.h"
#include "common/markdown_table.h"
#include "common/number_format.h"
#include "spec/json_io.h"
#include "spec/overrides.h"

namespace selene::client {
namespace {

// A version-4 UUID: the idempotency key that makes a retried submit safe.
std::string RandomRequestId() {
  std::random_device device;
  std::mt19937_64 random((static_cast<uint64_t>(device()) << 32) ^ device() ^
                         static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())));
  const uint64_t high = (random() & ~uint64_t{0xF000}) | 0x4000;
  const uint64_t low = (random() & ~(uint64_t{0xC} << 60)) | (uint64_t{0x8} << 60);
  return absl::StrFormat("%08x-%04x-%04x-%04x-%012x", high >> 32, (high >> 16) & 0xFFFF,
                         high & 0xFFFF, low >> 48, low & 0xFFFFFFFFFFFF);
}

std::string ToJson(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

std::string TimeText(const google::protobuf::Timestamp& time) {
  if (time.seconds() == 0 && time.nanos() == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixSeconds(time.seconds()),
                          absl::LocalTimeZone());
}

std::string EpochText(const v1::Job& job) {
  return absl::StrCat(job.current_epoch(), "/", job.epochs());
}

std::string BestText(const v1::Job& job) {
  if (job.best_epoch() == 0) return "-";
  return absl::StrCat(job.monitor(), " ", FormatValue(job.best_value()), " @", job.best_epoch());
}

int NeedArgs(const ParsedArgs& args, size_t min, size_t max, const std::string& usage) {
  if (args.positional.size() < min || args.positional.size() > max) {
    PrintError(absl::StrCat("usage: ", usage));
    return kExitUsage;
  }
  return kExitOk;
}

}  // namespace

std::string StateName(int state) {
  return std::string(
      absl::StripPrefix(v1::JobState_Name(static_cast<v1::JobState>(state)), "JOB_STATE_"));
}

int RunSubmit(const ParsedArgs& args, Connection& connection) {
  if (const int code = NeedArgs(args, 1, 1,
                                "selene submit SPEC.json [--set F=V ...] "
                                "[--priority N] [--watch]")) {
    return code;
  }
  StatusOr<v1::JobSpec> spec = spec::LoadJobSpecFile(args.positional[0]);
  if (!spec.ok()) return ReportUsageError(spec.status());
  if (const Status status = spec::ApplyOverrides(&*spec, args.GetAll("set")); !status.ok()) {
    return ReportUsageError(status);
  }
  v1::SubmitJobRequest request;
  *request.mutable_spec() = *spec;
  request.set_request_id(RandomRequestId());
  if (args.Has("priority")) {
    int priority = 0;
    if (!absl::SimpleAtoi(args.Get("priority"), &priority)) {
      PrintError(absl::StrCat("--priority: '", args.Get("priority"), "' is not an integer"));
      return kExitUsage;
    }
    request.set_priority(priority);
  }
  v1::SubmitJobResponse response;
  grpc::Status status;
  // The same request id on the retry: the server returns the job the first attempt made, if any.
  for (int attempt = 0; attempt < 2; ++attempt) {
    grpc::ClientContext context;
    connection.Prepare(&context);
    status = connection.training().SubmitJob(&context, request, &response);
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE) break;
    absl::SleepFor(absl::Milliseconds(500));
  }
  if (!status.ok()) return connection.Fail(status);
  std::cout << response.job().id() << std::endl;
  if (args.Enabled("watch")) return WatchJob(response.job().id(), connection);
  return kExitOk;
}

int RunGet(const ParsedArgs& args, Connection& connection) {
  if (const int code = NeedArgs(args, 1, 1, "selene get JOB [--json]")) return code;
  v1::GetJobRequest request;
  request.set_job_id(args.positional[0]);
  v1::Job job;
  grpc::ClientContext context;
  connection.Prepare(&context);
  const grpc::Status status = connection.training().GetJob(&context, request, &job);
  if (!status.ok()) return connection.Fail(status);
  if (args.Enabled("json")) {
    std::cout << ToJson(job);
    return kExitOk;
  }
  MarkdownTable table;
  table.AddColumn("field").AddColumn("value");
  table.AddRow({"id", job.id()});
  table.AddRow({"name", job.name()});
  table.AddRow(
      {"state", StateName(job.state()) + (job.cancel_requested() ? " (cancel requested)" : "")});
  table.AddRow({"task", std::string(absl::StripPrefix(v1::Task_Name(job.spec().task()), "TASK_"))});
  table.AddRow({"priority", absl::StrCat(job.priority())});
  table.AddRow({"device", job.device().empty() ? "-" : job.device()});
  table.AddRow({"worker", job.worker().empty() ? "-" : job.worker()});
  table.AddRow({"epoch", EpochText(job)});
  table.AddRow({"best", BestText(job)});
  std::vector<std::pair<std::string, double>> metrics(job.latest_metrics().begin(),
                                                      job.latest_metrics().end());
  std::sort(metrics.begin(), metrics.end());
  for (const auto& [name, value] : metrics) {
    table.AddRow({absl::StrCat("latest ", name), FormatValue(value)});
  }
  table.AddRow({"created", TimeText(job.create_time())});
  table.AddRow({"started", TimeText(job.start_time())});
  table.AddRow({"finished", TimeText(job.finish_time())});
  if (!job.depends_on().empty()) table.AddRow({"depends on", job.depends_on()});
  table.AddRow({"attempts", absl::StrCat(job.attempts(), " (resumes ", job.resumes(), ")")});
  if (!job.error().empty()) table.AddRow({"error", job.error()});
  std::cout << table.Render();
  return kExitOk;
}

int RunList(const ParsedArgs& args, Connection& connection) {
  if (const int code = NeedArgs(args, 0, 0, "selene list [--state S] [--json]")) return code;
  v1::ListJobsRequest request;
  if (args.Has("state")) {
    const std::string name = absl::StrCat(
        "JOB_STATE_",
        absl::AsciiStrToUpper(std::string(absl::StripPrefix(args.Get("state"), "JOB_STATE_"))));
    v1::JobState state;
    if (!v1::JobState_Parse(name, &state)) {
      PrintError(absl::StrCat("--state: unknown state '", args.Get("state"),
                              "' (queued, running, succeeded, failed, cancelled)"));
      return kExitUsage;
    }
    request.set_state(state);
  }
  request.set_page_size(500);
  v1::ListJobsResponse all;
  while (true) {
    v1::ListJobsResponse page;
    grpc::ClientContext context;
    connection.Prepare(&context);
    const grpc::Status status = connection.training().ListJobs(&context, request, &page);
    if (!status.ok()) return connection.Fail(status);
    for (const v1::Job& job : page.jobs()) *all.add_jobs() = job;
    if (page.next_page_token().empty()) break;
    request.set_page_token(page.next_page_token());
  }
  if (args.Enabled("json")) {
    std::cout << ToJson(all);
    return kExitOk;
  }
  MarkdownTable table;
  table.AddColumn("id")
      .AddColumn("name")
      .AddColumn("state")
      .AddColumn("epoch", MarkdownTable::Align::kRight)
      .AddColumn("best")
      .AddColumn("created");
  for (const v1::Job& job : all.jobs()) {
    table.AddRow({job.id(), job.name(), StateName(job.state()), EpochText(job), BestText(job),
                  TimeText(job.create_time())});
  }
  std::cout << table.Render();
  return kExitOk;
}

int RunCancel(const ParsedArgs& args, Connection& connection) {
  if (const int code = NeedArgs(args, 1, 1, "selene cancel JOB [--reason R]")) return code;
  v1::CancelJobRequest request;
  request.set_job_id(args.positional[0]);
  request.set_reason(args.Get("reason"));
  v1::Job job;
  grpc::ClientContext context;
  connection.Prepare(&context);
  const grpc::Status status = connection.training().CancelJob(&context, request, &job);
  if (!status.ok()) return connection.Fail(status);
  std::cout << job.id() << ": "
            << (job.cancel_requested() && job.state() == v1::JOB_STATE_RUNNING
                    ? "cancel requested (stops within a training step)"
                    : StateName(job.state()))
            << std::endl;
  return kExitOk;
}

int RunCompare(const ParsedArgs& args, Connection& connection) {
  if (const int code = NeedArgs(args, 1, 1000, "selene compare JOB... [--json]")) return code;
  v1::CompareJobsRequest request;
  for (const std::string& id : args.positional) request.add_job_ids(id);
  v1::CompareJobsResponse response;
  grpc::ClientContext context;
  connection.Prepare(&context);
  const grpc::Status status = connection.training().CompareJobs(&context, request, &response);
  if (!status.ok()) return connection.Fail(status);
  if (args.Enabled("json")) {
    std::cout << ToJson(response);
    return kExitOk;
  }
  // The server's table names runs by spec name, which need not be unique: put the job id in
  // front (rows follow the request order), keeping the Markdown valid and aligned.
  std::vector<std::string> lines = absl::StrSplit(response.markdown(), '\n', absl::SkipEmpty());
  size_t width = 3;
  for (const v1::ComparedJob& job : response.jobs()) width = std::max(width, job.job_id().size());
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string cell;
    if (i == 0) {
      cell = "job";
    } else if (i == 1) {
      cell = ":" + std::string(width - 1, '-');
    } else if (i - 2 < static_cast<size_t>(response.jobs_size())) {
      cell = response.jobs(static_cast<int>(i - 2)).job_id();
    }
    cell.resize(width, ' ');
    std::cout << "| " << cell << " " << lines[i] << "\n";
  }
  return kExitOk;
}

int RunHealth(const ParsedArgs& args, Connection& connection) {
  if (const int code = NeedArgs(args, 0, 0, "selene health")) return code;
  // grpc.health.v1.Health/Check for the whole server: the request is an empty message and the
  // reply is { ServingStatus status = 1 }, small enough to read without the generated code.
  grpc::GenericStub stub(connection.channel());
  grpc::Slice empty("");
  const grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  grpc::ClientContext context;
  connection.Prepare(&context);
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  const grpc::Status status = done.get_future().get();
  if (!status.ok()) return connection.Fail(status);
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (response.Dump(&slices).ok()) {
    for (const grpc::Slice& slice : slices) {
      bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
    }
  }
  const int serving = bytes.size() >= 2 && bytes[0] == 0x08 ? bytes[1] : 0;
  static const char* kNames[] = {"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"};
  std::cout << connection.server() << ": "
            << (serving >= 0 && serving <= 3 ? kNames[serving] : "UNKNOWN") << std::endl;
  return serving == 1 ? kExitOk : kExitFailed;
}

}  // namespace selene::client
