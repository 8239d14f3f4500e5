// selene-serving-bench: Selene's inference in process, without gRPC: the serving forward pass of
// one model (ServableModel::RunBatch: normalise, network forward under InferenceMode, copy out)
// for one image, and a whole Segment call through the InferenceEngine (decode, resize, batcher,
// forward, mask back to the input's size, PNG) with batching off and on, at one or more clients.
// bench/run.sh holds these against PyTorch eager and against Segment over gRPC (selene-load).
//
//   selene-serving-bench [--checkpoint var/jobs/job-1/best.pt] [--threads 1] [--seconds 3]
//                        [--compare_unoptimized] [--bf16] [--engine_clients 1] [--dump DIR]
//
// Without --checkpoint it serves the default U-Net (128x128, binary) with random weights and
// random BatchNorm statistics, written to a temporary job folder.
#include <ATen/Parallel.h>
#include <torch/torch.h>
#include <unistd.h>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "bench/bench_common.h"
#include "common/run_folder.h"
#include "server/serving/inference_engine.h"
#include "server/serving/model_registry.h"
#include "server/serving/servable_model.h"
#include "server/train/checkpoint.h"
#include "spec/json_io.h"
#include "spec/network_builder.h"
#include "spec/resolved_job_spec.h"

ABSL_FLAG(std::string, checkpoint, "",
          "A job's best.pt (its spec is read from the metadata); empty = a random default U-Net.");
ABSL_FLAG(int, threads, 1,
          "Intra-op threads of the forward pass (the server's "
          "--inference_threads).");
ABSL_FLAG(double, seconds, 3.0, "Time per measurement.");
ABSL_FLAG(int, min_iterations, 10, "Fewest timed calls per measurement.");
ABSL_FLAG(bool, compare_unoptimized, false,
          "Also time the forward pass without BatchNorm folding, without channels-last, and "
          "without both (before/after), interleaved with the served configuration.");
ABSL_FLAG(bool, bf16, false,
          "Also time the served configuration in bfloat16 (--inference_precision bf16) and "
          "compare its logits and mask with fp32's on the test image.");
ABSL_FLAG(std::string, engine_clients, "1",
          "Comma list of concurrent in-process Segment callers, each with batching off and on; "
          "empty = none.");
ABSL_FLAG(std::string, engine_batch_sizes, "1,8",
          "Comma list of max_batch_size values for the in-process Segment calls (1 = off).");
ABSL_FLAG(int, max_queue_delay_ms, 5, "Batcher delay when batching is on.");
ABSL_FLAG(std::string, dump, "",
          "Folder to write the forward pass's input (input.raw, uint8 HWC RGB) and logits "
          "(logits.raw, float32) for bench/pytorch/bench.py check.");

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using selene::StatusOr;

constexpr char kDefaultUNet[] = R"json({"name": "default-unet", "task": "binary_segmentation",
    "model": {"unet": {}}, "data": {"kind": "synthetic_moon", "image_size": 128}})json";

struct Timing {
  std::vector<double> ms;
  double seconds = 0;

  double Percentile(double q) const {
    std::vector<double> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    return selene::bench::Percentile(sorted, q);
  }
  std::string Json() const {
    return absl::StrFormat(
        "{\"calls\": %d, \"median_ms\": %.3f, \"p95_ms\": %.3f, \"p99_ms\": %.3f, "
        "\"min_ms\": %.3f, \"throughput_rps\": %.3f}",
        ms.size(), Percentile(0.5), Percentile(0.95), Percentile(0.99),
        ms.empty() ? 0.0 : *std::min_element(ms.begin(), ms.end()), ms.size() / seconds);
  }
};

// Calls `fn` until --seconds have passed and at least --min_iterations calls were made; with
// `parts` > 1: a share of that, for one of several interleaved rounds.
template <typename Fn>
Timing TimeCalls(Fn&& fn, int parts = 1) {
  Timing timing;
  const double budget = absl::GetFlag(FLAGS_seconds) / parts;
  const int min_calls = (absl::GetFlag(FLAGS_min_iterations) + parts - 1) / parts;
  const auto start = Clock::now();
  while (static_cast<int>(timing.ms.size()) < min_calls ||
         std::chrono::duration<double>(Clock::now() - start).count() < budget) {
    const auto t = Clock::now();
    fn();
    timing.ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t).count());
  }
  timing.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return timing;
}

using selene::bench::TestImage;

// A random-weight default U-Net written as a job folder; BatchNorm statistics randomised too, so
// eval mode (and folding) has something to do.
StatusOr<std::string> WriteDefaultUNet() {
  SELENE_ASSIGN_OR_RETURN(selene::v1::JobSpec spec, selene::spec::ParseJobSpecJson(kDefaultUNet));
  SELENE_ASSIGN_OR_RETURN(selene::spec::ResolvedJobSpec resolved,
                          selene::spec::ResolvedJobSpec::Resolve(spec));
  torch::manual_seed(1);
  SELENE_ASSIGN_OR_RETURN(selene::models::Network network, selene::spec::BuildNetwork(resolved));
  {
    torch::NoGradGuard no_grad;
    for (auto& buffer : network->named_buffers()) {
      if (absl::EndsWith(buffer.key(), "running_mean")) buffer.value().normal_(0.0, 0.2);
      if (absl::EndsWith(buffer.key(), "running_var")) buffer.value().uniform_(0.5, 1.5);
    }
  }
  const fs::path dir =
      fs::temp_directory_path() / absl::StrCat("selene-serving-bench-", ::getpid());
  fs::create_directories(dir);
  const std::string path = selene::RunFolder(dir.string()).best_checkpoint();
  SELENE_RETURN_IF_ERROR(selene::train::SaveCheckpoint(
      path, *network, selene::spec::JobSpecToJson(resolved.proto(), false)));
  return path;
}

// One model in a catalog of one, under the job id "bench".
class OneModelCatalog : public selene::serving::ModelCatalog {
 public:
  explicit OneModelCatalog(selene::serving::ServableModelRecord record)
      : record_(std::move(record)) {}
  StatusOr<selene::serving::ServableModelRecord> Find(const std::string& job_id) override {
    if (job_id != record_.job_id) return selene::NotFoundError("no model " + job_id);
    return record_;
  }
  StatusOr<std::vector<selene::serving::ServableModelRecord>> ListServable() override {
    return std::vector<selene::serving::ServableModelRecord>{record_};
  }

 private:
  selene::serving::ServableModelRecord record_;
};

int Fail(const std::string& message) {
  std::cerr << "selene-serving-bench: " << message << std::endl;
  return 1;
}

std::string JsonList(const std::vector<double>& values) {
  return absl::StrCat("[", absl::StrJoin(values, ", "), "]");
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int threads = absl::GetFlag(FLAGS_threads);
  std::string checkpoint = absl::GetFlag(FLAGS_checkpoint);
  if (checkpoint.empty()) {
    StatusOr<std::string> written = WriteDefaultUNet();
    if (!written.ok()) return Fail(std::string(written.status().message()));
    checkpoint = *written;
  }
  selene::serving::ServableModelRecord record;
  record.job_id = "bench";
  record.checkpoint_path = checkpoint;  // spec left unset: read from the checkpoint's metadata

  selene::serving::DynamicBatcherOptions batcher;
  batcher.max_batch_size = 1;
  batcher.inference_threads = threads;
  // The forward pass runs on this thread here (on the batcher's worker in the server), so this
  // thread gets the batcher's intra-op thread count.
  at::set_num_threads(threads);
  struct Variant {
    std::string name;
    selene::serving::ServableModelOptions options;
    std::shared_ptr<selene::serving::ServableModel> model;
    Timing timing;
  };
  std::vector<Variant> variants;
  if (absl::GetFlag(FLAGS_compare_unoptimized)) {
    variants.push_back({"plain", {false, false}, nullptr, {}});
    variants.push_back({"folded", {true, false}, nullptr, {}});
    variants.push_back({"channels_last", {false, true}, nullptr, {}});
  }
  if (absl::GetFlag(FLAGS_bf16)) {
    selene::serving::ServableModelOptions bf16;
    bf16.bfloat16 = true;
    variants.push_back({"served_bf16", bf16, nullptr, {}});
  }
  variants.push_back({"served", {}, nullptr, {}});  // the server's defaults: last
  for (Variant& v : variants) {
    StatusOr<std::shared_ptr<selene::serving::ServableModel>> model =
        selene::serving::ServableModel::Load(record, batcher, v.options);
    if (!model.ok()) return Fail(std::string(model.status().message()));
    v.model = *model;
  }
  std::shared_ptr<selene::serving::ServableModel> served = variants.back().model;
  const std::vector<cv::Mat> images = {
      TestImage(static_cast<int>(served->description().input_size))};
  // Interleaved rounds, so a burst of load from another process on this shared machine falls on
  // every variant alike.
  constexpr int kRounds = 4;
  for (Variant& v : variants) {
    for (int i = 0; i < 3; ++i) (void)v.model->RunBatch(images);
  }
  for (int round = 0; round < kRounds; ++round) {
    for (Variant& v : variants) {
      Timing t = TimeCalls([&] { (void)v.model->RunBatch(images); }, kRounds);
      v.timing.ms.insert(v.timing.ms.end(), t.ms.begin(), t.ms.end());
      v.timing.seconds += t.seconds;
    }
  }
  std::vector<std::string> forward_json;
  for (const Variant& v : variants) {
    forward_json.push_back(absl::StrFormat("\"%s\": %s", v.name, v.timing.Json()));
  }
  const double optimized_median = variants.back().timing.Percentile(0.5);
  // What a full batch costs per image (the batcher's best case): on a CPU at one thread the
  // convolutions are already efficient at batch 1, so batching buys little and costs waiting.
  const std::vector<cv::Mat> batch8(8, images.front());
  (void)served->RunBatch(batch8);
  const Timing batched = TimeCalls([&] { (void)served->RunBatch(batch8); }, 8);
  const double batch8_per_image = batched.Percentile(0.5) / 8;

  // bf16 against fp32 on the test image: the largest logit difference and the share of pixels
  // whose mask (logit > 0) is the same.
  std::string bf16_json = "null";
  if (variants.size() > 1 && variants[variants.size() - 2].name == "served_bf16") {
    StatusOr<std::vector<selene::serving::ModelOutput>> fp32 = served->RunBatch(images);
    StatusOr<std::vector<selene::serving::ModelOutput>> bf16 =
        variants[variants.size() - 2].model->RunBatch(images);
    if (!fp32.ok() || !bf16.ok()) return Fail("bf16 comparison: a forward pass failed");
    const std::vector<float>& a = fp32->at(0).values;
    const std::vector<float>& b = bf16->at(0).values;
    double largest = 0, worst = 0;
    int64_t same_mask = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      largest = std::max(largest, std::abs(double{a[i]}));
      worst = std::max(worst, std::abs(double{a[i]} - b[i]));
      same_mask += (a[i] > 0) == (b[i] > 0) ? 1 : 0;
    }
    bf16_json = absl::StrFormat(
        "{\"max_abs_logit_diff\": %.6g, \"logit_scale\": %.6g, \"mask_agreement\": %.6f}", worst,
        largest, static_cast<double>(same_mask) / std::max<size_t>(1, a.size()));
  }

  std::string dump_json = "null";
  if (const std::string dump = absl::GetFlag(FLAGS_dump); !dump.empty()) {
    fs::create_directories(dump);
    const int side = static_cast<int>(served->description().input_size);
    const cv::Mat image = TestImage(side);
    StatusOr<std::vector<selene::serving::ModelOutput>> out = served->RunBatch({image});
    if (!out.ok()) return Fail(std::string(out.status().message()));
    const std::string input_path = (fs::path(dump) / "input.raw").string();
    const std::string logits_path = (fs::path(dump) / "logits.raw").string();
    std::ofstream(input_path, std::ios::binary)
        .write(reinterpret_cast<const char*>(image.data), image.total() * image.elemSize());
    const std::vector<float>& values = out->at(0).values;
    std::ofstream(logits_path, std::ios::binary)
        .write(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
    dump_json = absl::StrFormat(
        "{\"input\": \"%s\", \"logits\": \"%s\", \"size\": %d, \"mean\": %s, \"std\": %s}",
        fs::absolute(input_path).string(), fs::absolute(logits_path).string(), side,
        JsonList(served->description().normalize_mean),
        JsonList(served->description().normalize_std));
  }

  // Whole Segment calls in process: what the server does for a request, minus gRPC.
  std::vector<std::string> engine_json;
  const std::string clients_flag = absl::GetFlag(FLAGS_engine_clients);
  std::vector<int> client_counts;
  for (absl::string_view part : absl::StrSplit(clients_flag, ',', absl::SkipEmpty())) {
    int n = 0;
    if (absl::SimpleAtoi(part, &n) && n > 0) client_counts.push_back(n);
  }
  if (!client_counts.empty()) {
    OneModelCatalog catalog(record);
    std::vector<uchar> png;
    cv::Mat bgr;
    cv::cvtColor(TestImage(static_cast<int>(served->description().input_size)), bgr,
                 cv::COLOR_RGB2BGR);
    cv::imencode(".png", bgr, png);
    selene::v1::SegmentRequest request;
    request.set_model("bench");
    request.set_image(std::string(png.begin(), png.end()));
    std::vector<int> batch_sizes;
    for (absl::string_view part :
         absl::StrSplit(absl::GetFlag(FLAGS_engine_batch_sizes), ',', absl::SkipEmpty())) {
      int n = 0;
      if (absl::SimpleAtoi(part, &n) && n > 0) batch_sizes.push_back(n);
    }
    for (int max_batch : batch_sizes) {
      selene::serving::ModelRegistryOptions options;
      options.batcher.max_batch_size = max_batch;
      options.batcher.max_queue_delay = absl::Milliseconds(absl::GetFlag(FLAGS_max_queue_delay_ms));
      options.batcher.inference_threads = threads;
      selene::serving::ModelRegistry registry(&catalog, options);
      selene::serving::InferenceEngine engine(&registry);
      for (int i = 0; i < 3; ++i) {
        if (auto r = engine.Segment(request); !r.ok()) {
          return Fail(std::string(r.status().message()));
        }
      }
      for (int clients : client_counts) {
        std::vector<Timing> per_client(static_cast<size_t>(clients));
        std::vector<std::thread> workers;
        const auto start = Clock::now();
        for (int c = 0; c < clients; ++c) {
          workers.emplace_back([&, c] {
            per_client[static_cast<size_t>(c)] = TimeCalls([&] { (void)engine.Segment(request); });
          });
        }
        for (std::thread& t : workers) t.join();
        Timing all;
        for (const Timing& t : per_client) all.ms.insert(all.ms.end(), t.ms.begin(), t.ms.end());
        all.seconds = std::chrono::duration<double>(Clock::now() - start).count();
        engine_json.push_back(absl::StrFormat("{\"max_batch_size\": %d, \"clients\": %d, %s",
                                              max_batch, clients, all.Json().substr(1)));
      }
    }
  }

  std::cout << absl::StrFormat(
                   "{\"checkpoint\": \"%s\", \"threads\": %d, \"parameters\": %d, "
                   "\"forward\": {%s}, \"forward_median_ms\": %.3f, "
                   "\"forward_batch8_per_image_ms\": %.3f, \"engine_segment\": [%s], "
                   "\"bf16_vs_fp32\": %s, \"dump\": %s}",
                   checkpoint, threads, served->parameters(), absl::StrJoin(forward_json, ", "),
                   optimized_median, batch8_per_image, absl::StrJoin(engine_json, ", "), bf16_json,
                   dump_json)
            << std::endl;
  return 0;
}
