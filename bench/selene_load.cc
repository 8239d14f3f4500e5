// selene-load: a gRPC load generator for Selene's inference calls. N clients, each on its own
// channel (its own TCP connection), send the same image back to back for a bounded time and
// record every call's latency; one JSON object comes out: p50, p95, p99, throughput and the
// errors by status code.
//
// --call picks what is driven: `segment` (selene.v1 Segment with the encoded image), `infer_raw`
// (Open Inference ModelInfer with the decoded pixels as a raw UINT8 [1, H, W, 3] tensor) or
// `infer_bytes` (ModelInfer with the encoded image as BYTES). --compare drives all three one
// after the other against the same server in one run and adds each ModelInfer's ratios to
// Segment's (throughput, p50, p99), the comparison docs/benchmarks.md reports.
//
//   selene-load --server 127.0.0.1:50051 --model job-1 --concurrency 4 --seconds 10
//               [--call segment|infer_raw|infer_bytes | --compare]
//               [--image FILE] [--size 128] [--warmup_calls 3] [--timeout_ms 30000]
#include <grpcpp/grpcpp.h>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
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
#include "inference/grpc_predict_v2.grpc.pb.h"
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
ABSL_FLAG(std::string, call, "segment",
          "What to drive: segment (selene.v1 Segment), infer_raw (ModelInfer, raw UINT8 pixels) "
          "or infer_bytes (ModelInfer, the encoded image as BYTES).");
ABSL_FLAG(bool, compare, false,
          "Drive segment, infer_raw and infer_bytes one after the other and report ModelInfer's "
          "ratios to Segment.");

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

// One call of the kind driven, on client `c`'s channel.
using Call = std::function<grpc::Status(int c)>;

struct LoadResult {
  std::string json;
  double throughput_rps = 0;
  double p50_ms = 0;
  double p99_ms = 0;
};

// Warms up every client, then lets them all call for --seconds; the JSON object of the run.
LoadResult RunLoad(const std::string& name, const Call& call, int concurrency,
                   const std::string& model, size_t request_bytes) {
  std::vector<ClientResult> results(static_cast<size_t>(concurrency));
  const auto timed_call = [&](int c, ClientResult* result) {
    const auto start = Clock::now();
    const grpc::Status status = call(c);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    if (result == nullptr) return;
    if (status.ok()) {
      result->ok_ms.push_back(ms);
    } else {
      result->error_ms.push_back(ms);
      ++result->errors[CodeName(status.error_code())];
      if (result->first_error.empty()) result->first_error = status.error_message();
    }
  };

  // Warm-up, one client after the other: connections made, the model loaded, caches warm.
  for (int c = 0; c < concurrency; ++c) {
    for (int i = 0; i < absl::GetFlag(FLAGS_warmup_calls); ++i) timed_call(c, nullptr);
  }

  std::atomic<bool> go{false};
  const auto duration = std::chrono::duration<double>(absl::GetFlag(FLAGS_seconds));
  Clock::time_point start;
  std::vector<std::thread> clients;
  for (int c = 0; c < concurrency; ++c) {
    clients.emplace_back([&, c] {
      while (!go.load()) std::this_thread::yield();
      const auto end = start + std::chrono::duration_cast<Clock::duration>(duration);
      while (Clock::now() < end) timed_call(c, &results[static_cast<size_t>(c)]);
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
  LoadResult result;
  result.throughput_rps = static_cast<double>(all.size()) / elapsed;
  result.p50_ms = Percentile(all, 0.50);
  result.p99_ms = Percentile(all, 0.99);
  result.json = absl::StrFormat(
      "{\"call\": \"%s\", \"model\": \"%s\", \"concurrency\": %d, \"seconds\": %.3f, "
      "\"request_bytes\": %d, \"requests\": %d, \"ok\": %d, \"errors\": %d, "
      "\"errors_by_code\": {%s}, \"first_error\": \"%s\", "
      "\"throughput_rps\": %.3f, \"mean_ms\": %.3f, \"p50_ms\": %.3f, "
      "\"p95_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f, "
      "\"error_p50_ms\": %.3f}",
      name, model, concurrency, elapsed, request_bytes,
      static_cast<int64_t>(all.size()) + error_count, static_cast<int64_t>(all.size()), error_count,
      absl::StrJoin(error_fields, ", "), escaped, result.throughput_rps, mean, result.p50_ms,
      Percentile(all, 0.95), result.p99_ms, all.empty() ? 0.0 : all.back(),
      Percentile(error_ms, 0.50));
  return result;
}

// The Open Inference request for the image: its pixels as a raw UINT8 [1, H, W, 3] tensor, or
// the encoded bytes as a BYTES [1] tensor. Empty model name when the image does not decode.
inference::ModelInferRequest InferRequest(const std::string& model, const std::string& image,
                                          bool raw_pixels) {
  inference::ModelInferRequest request;
  request.set_model_name(model);
  auto* input = request.add_inputs();
  if (raw_pixels) {
    cv::Mat bgr = cv::imdecode(std::vector<uchar>(image.begin(), image.end()), cv::IMREAD_COLOR);
    if (bgr.empty()) return {};
    cv::Mat rgb;
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    input->set_name("image");
    input->set_datatype("UINT8");
    for (int64_t d : {int64_t{1}, int64_t{rgb.rows}, int64_t{rgb.cols}, int64_t{3}}) {
      input->add_shape(d);
    }
    request.add_raw_input_contents(reinterpret_cast<const char*>(rgb.data), rgb.total() * 3);
  } else {
    input->set_name("image_bytes");
    input->set_datatype("BYTES");
    input->add_shape(1);
    input->mutable_contents()->add_bytes_contents(image);
  }
  return request;
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
  std::vector<std::string> calls = {absl::GetFlag(FLAGS_call)};
  if (absl::GetFlag(FLAGS_compare)) calls = {"segment", "infer_raw", "infer_bytes"};

  selene::v1::SegmentRequest segment;
  segment.set_model(model);
  segment.set_image(image);
  const inference::ModelInferRequest infer_raw = InferRequest(model, image, true);
  const inference::ModelInferRequest infer_bytes = InferRequest(model, image, false);
  if (infer_raw.model_name().empty()) {
    std::cerr << "selene-load: the image does not decode, so it has no raw pixels to send\n";
    return 2;
  }
  const auto timeout = std::chrono::milliseconds(absl::GetFlag(FLAGS_timeout_ms));

  std::vector<std::unique_ptr<selene::v1::InferenceService::Stub>> stubs;
  std::vector<std::unique_ptr<inference::GRPCInferenceService::Stub>> open_stubs;
  for (int c = 0; c < concurrency; ++c) {
    grpc::ChannelArguments args;
    // Own subchannel per client: N clients are N connections, as N separate callers would be.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetMaxReceiveMessageSize(64 << 20);
    const std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
        absl::GetFlag(FLAGS_server), grpc::InsecureChannelCredentials(), args);
    stubs.push_back(selene::v1::InferenceService::NewStub(channel));
    open_stubs.push_back(inference::GRPCInferenceService::NewStub(channel));
  }
  const auto prepare = [&](grpc::ClientContext* context) {
    context->set_deadline(std::chrono::system_clock::now() + timeout);
    if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
  };
  const auto infer = [&](const inference::ModelInferRequest& request) -> Call {
    return [&](int c) {
      grpc::ClientContext context;
      prepare(&context);
      inference::ModelInferResponse response;
      return open_stubs[static_cast<size_t>(c)]->ModelInfer(&context, request, &response);
    };
  };
  const std::map<std::string, std::pair<Call, size_t>> kinds = {
      {"segment",
       {[&](int c) {
          grpc::ClientContext context;
          prepare(&context);
          selene::v1::SegmentResponse response;
          return stubs[static_cast<size_t>(c)]->Segment(&context, segment, &response);
        },
        segment.ByteSizeLong()}},
      {"infer_raw", {infer(infer_raw), infer_raw.ByteSizeLong()}},
      {"infer_bytes", {infer(infer_bytes), infer_bytes.ByteSizeLong()}},
  };

  std::vector<LoadResult> results;
  for (const std::string& name : calls) {
    const auto kind = kinds.find(name);
    if (kind == kinds.end()) {
      std::cerr << "selene-load: --call " << name << " is not segment, infer_raw or infer_bytes\n";
      return 2;
    }
    results.push_back(RunLoad(name, kind->second.first, concurrency, model, kind->second.second));
  }
  bool any_ok = false;
  for (const LoadResult& r : results) any_ok |= r.throughput_rps > 0;
  if (results.size() == 1) {
    std::cout << results[0].json << std::endl;
    return any_ok ? 0 : 1;
  }
  // Ratios to Segment's run (results[0]): above 1 is more throughput or more latency.
  std::vector<std::string> jsons;
  std::vector<std::string> ratios;
  for (const LoadResult& r : results) jsons.push_back(r.json);
  const LoadResult& base = results[0];
  const auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
  for (size_t i = 1; i < results.size(); ++i) {
    ratios.push_back(absl::StrFormat(
        "\"%s\": {\"throughput\": %.3f, \"p50\": %.3f, \"p99\": %.3f}", calls[i],
        ratio(results[i].throughput_rps, base.throughput_rps),
        ratio(results[i].p50_ms, base.p50_ms), ratio(results[i].p99_ms, base.p99_ms)));
  }
  std::cout << "{\"runs\": [" << absl::StrJoin(jsons, ", ") << "], \"vs_segment\": {"
            << absl::StrJoin(ratios, ", ") << "}}" << std::endl;
  return any_ok ? 0 : 1;
}
