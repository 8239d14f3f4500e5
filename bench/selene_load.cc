// selene-load: a gRPC load generator for InferenceService.Segment. N clients, each on its own
// channel (its own TCP connection), send the same encoded image back to back for a bounded time
// and record every call's latency; one JSON object comes out: p50, p95, p99, throughput and the
// errors by status code.
//
//   selene-load --server 127.0.0.1:50051 --model job-1 --concurrency 4 --seconds 10
//               [--image FILE] [--size 128] [--warmup_calls 3] [--timeout_ms 30000]
#include <grpcpp/grpcpp.h>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "bench/bench_common.h"
#include "selene/v1/inference_service.grpc.pb.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "selene-server address.");
ABSL_FLAG(std::string, model, "latest", "Model: job id or alias.");
ABSL_FLAG(int, concurrency, 1, "Clients sending at once, one channel each.");
ABSL_FLAG(double, seconds, 10.0, "How long the clients send (after their warm-up calls).");
ABSL_FLAG(std::string, image, "", "Encoded image to send; empty = a generated PNG of --size.");
ABSL_FLAG(int, size, 128, "Side of the generated image.");
ABSL_FLAG(int, warmup_calls, 3, "Calls per client before timing (the first loads the model).");
ABSL_FLAG(int, timeout_ms, 30000, "Deadline of each call.");
ABSL_FLAG(std::string, token_file, "", "Bearer token file, when the server wants one.");

namespace {

using Clock = std::chrono::steady_clock;

// The test image selene-serving-bench times in process, as PNG.
std::string GeneratedPng(int side) {
  std::vector<uchar> bytes;
  cv::imencode(".png", selene::bench::TestImage(side), bytes);
  return std::string(bytes.begin(), bytes.end());
}

using selene::bench::Percentile;

struct ClientResult {
  std::vector<double> ok_ms;
  std::vector<double> error_ms;
  std::map<std::string, int64_t> errors;  // status code name -> count
  std::string first_error;
};

std::string CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    default:
      return absl::StrCat("CODE_", static_cast<int>(code));
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int concurrency = std::max(1, absl::GetFlag(FLAGS_concurrency));
  const std::string model = absl::GetFlag(FLAGS_model);
  std::string image;
  if (const std::string path = absl::GetFlag(FLAGS_image); !path.empty()) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      std::cerr << "selene-load: cannot read " << path << "\n";
      return 2;
    }
    std::ostringstream bytes;
    bytes << in.rdbuf();
    image = bytes.str();
  } else {
    image = GeneratedPng(absl::GetFlag(FLAGS_size));
  }
  std::string token;
  if (const std::string path = absl::GetFlag(FLAGS_token_file); !path.empty()) {
    std::ifstream in(path);
    std::getline(in, token);
  }

  selene::v1::SegmentRequest request;
  request.set_model(model);
  request.set_image(image);
  const auto timeout = std::chrono::milliseconds(absl::GetFlag(FLAGS_timeout_ms));

  std::vector<ClientResult> results(static_cast<size_t>(concurrency));
  std::vector<std::unique_ptr<selene::v1::InferenceService::Stub>> stubs;
  for (int c = 0; c < concurrency; ++c) {
    grpc::ChannelArguments args;
    // Own subchannel per client: N clients are N connections, as N separate callers would be.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetMaxReceiveMessageSize(64 << 20);
    stubs.push_back(selene::v1::InferenceService::NewStub(grpc::CreateCustomChannel(
        absl::GetFlag(FLAGS_server), grpc::InsecureChannelCredentials(), args)));
  }
  auto call = [&](int c, ClientResult* result) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + timeout);
    if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
    selene::v1::SegmentResponse response;
    const auto start = Clock::now();
    const grpc::Status status =
        stubs[static_cast<size_t>(c)]->Segment(&context, request, &response);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    if (result == nullptr) return status.ok();
    if (status.ok()) {
      result->ok_ms.push_back(ms);
    } else {
      result->error_ms.push_back(ms);
      ++result->errors[CodeName(status.error_code())];
      if (result->first_error.empty()) result->first_error = status.error_message();
    }
    return status.ok();
  };

  // Warm-up, one client after the other: connections made, the model loaded, caches warm.
  for (int c = 0; c < concurrency; ++c) {
    for (int i = 0; i < absl::GetFlag(FLAGS_warmup_calls); ++i) call(c, nullptr);
  }

  std::atomic<bool> go{false};
  const auto duration = std::chrono::duration<double>(absl::GetFlag(FLAGS_seconds));
  Clock::time_point start;
  std::vector<std::thread> clients;
  for (int c = 0; c < concurrency; ++c) {
    clients.emplace_back([&, c] {
      while (!go.load()) std::this_thread::yield();
      const auto end = start + std::chrono::duration_cast<Clock::duration>(duration);
      while (Clock::now() < end) call(c, &results[static_cast<size_t>(c)]);
    });
  }
  start = Clock::now();
  go.store(true);
  for (std::thread& t : clients) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();

  std::vector<double> all;
  std::vector<double> error_ms;
  std::map<std::string, int64_t> errors;
  std::string first_error;
  for (const ClientResult& r : results) {
    all.insert(all.end(), r.ok_ms.begin(), r.ok_ms.end());
    error_ms.insert(error_ms.end(), r.error_ms.begin(), r.error_ms.end());
    for (const auto& [code, n] : r.errors) errors[code] += n;
    if (first_error.empty()) first_error = r.first_error;
  }
  std::sort(all.begin(), all.end());
  std::sort(error_ms.begin(), error_ms.end());
  int64_t error_count = 0;
  std::vector<std::string> error_fields;
  for (const auto& [code, n] : errors) {
    error_count += n;
    error_fields.push_back(absl::StrFormat("\"%s\": %d", code, n));
  }
  double mean = 0;
  for (double v : all) mean += v;
  if (!all.empty()) mean /= static_cast<double>(all.size());
  std::string escaped;
  for (char ch : first_error) {
    if (ch == '"' || ch == '\\') escaped += '\\';
    if (static_cast<unsigned char>(ch) >= 0x20) escaped += ch;
  }
  std::cout << absl::StrFormat(
                   "{\"model\": \"%s\", \"concurrency\": %d, \"seconds\": %.3f, "
                   "\"image_bytes\": %d, \"requests\": %d, \"ok\": %d, \"errors\": %d, "
                   "\"errors_by_code\": {%s}, \"first_error\": \"%s\", "
                   "\"throughput_rps\": %.3f, \"mean_ms\": %.3f, \"p50_ms\": %.3f, "
                   "\"p95_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f, "
                   "\"error_p50_ms\": %.3f}",
                   model, concurrency, elapsed, image.size(),
                   static_cast<int64_t>(all.size()) + error_count, static_cast<int64_t>(all.size()),
                   error_count, absl::StrJoin(error_fields, ", "), escaped, all.size() / elapsed,
                   mean, Percentile(all, 0.50), Percentile(all, 0.95), Percentile(all, 0.99),
                   all.empty() ? 0.0 : all.back(), Percentile(error_ms, 0.50))
            << std::endl;
  return error_count > 0 && all.empty() ? 1 : 0;
}
