// Not a test: measures Segment latency and throughput for the default U-Net (base width 16,
// 128x128, binary) with a random-weight checkpoint, batching off (max_batch_size 1) against on
// (8, 5 ms). Usage:
//   serving_latency_bench [requests=100] [clients=8] [inference_threads=1] [max_queue_delay_ms=5]
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "server/serving/inference_engine.h"
#include "tests/server/serving/serving_test_models.h"

namespace selene::serving {
namespace {

void SetTorchThreads(int threads) { at::set_num_threads(threads); }

struct Summary {
  double median_ms = 0;
  double p90_ms = 0;
  double images_per_second = 0;
};

Summary Summarise(std::vector<double> ms, double seconds) {
  std::sort(ms.begin(), ms.end());
  Summary s;
  s.median_ms = ms[ms.size() / 2];
  s.p90_ms = ms[ms.size() * 9 / 10];
  s.images_per_second = ms.size() / seconds;
  return s;
}

int Main(int argc, char** argv) {
  const int requests = argc > 1 ? std::atoi(argv[1]) : 100;
  const int clients = argc > 2 ? std::atoi(argv[2]) : 8;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 1;
  const double delay_ms = argc > 4 ? std::atof(argv[4]) : 5.0;
  testing::FakeCatalog catalog;
  catalog.Add(testing::MakeJob("job-unet", R"json({"name": "default-unet",
      "task": "binary_segmentation", "model": {"unet": {}},
      "data": {"kind": "synthetic_moon", "image_size": 128}})json",
                               1));
  std::vector<std::string> images;
  for (int i = 0; i < 16; ++i)
    images.push_back(testing::EncodePng(testing::TestImage(128, 128, 3, i)));

  std::printf("default U-Net 128x128, inference_threads %d, %u hardware threads\n", threads,
              std::thread::hardware_concurrency());
  {
    // The forward pass alone, on this thread with `threads` intra-op threads.
    ModelRegistryOptions options;
    options.batcher.inference_threads = threads;
    ModelRegistry registry(&catalog, options);
    StatusOr<std::shared_ptr<ServableModel>> model = registry.Get("job-unet");
    if (!model.ok()) return 1;
    SetTorchThreads(threads);
    const cv::Mat input = testing::TestImage(128, 128, 3, 0);
    for (int batch : {1, 8}) {
      const std::vector<cv::Mat> images(static_cast<size_t>(batch), input);
      (void)(*model)->RunBatch(images);
      std::vector<double> ms;
      for (int i = 0; i < std::max(3, 40 / batch); ++i) {
        const absl::Time start = absl::Now();
        (void)(*model)->RunBatch(images);
        ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start) / batch);
      }
      std::sort(ms.begin(), ms.end());
      std::printf("forward only, batch %d: median %.2f ms per image\n", batch, ms[ms.size() / 2]);
    }
  }
  for (int max_batch : {1, 8}) {
    ModelRegistryOptions options;
    options.batcher.max_batch_size = max_batch;
    options.batcher.max_queue_delay = absl::Milliseconds(delay_ms);
    options.batcher.inference_threads = threads;
    ModelRegistry registry(&catalog, options);
    InferenceEngine engine(&registry);
    auto segment = [&](int i) {
      v1::SegmentRequest request;
      request.set_model("job-unet");
      request.set_image(images[i % images.size()]);
      const absl::Time start = absl::Now();
      StatusOr<v1::SegmentResponse> response = engine.Segment(request);
      if (!response.ok()) std::fprintf(stderr, "%s\n", response.status().ToString().c_str());
      return absl::ToDoubleMilliseconds(absl::Now() - start);
    };
    for (int i = 0; i < 10; ++i) segment(i);  // load and warm up

    std::vector<double> single;
    absl::Time start = absl::Now();
    for (int i = 0; i < requests; ++i) single.push_back(segment(i));
    const Summary one = Summarise(single, absl::ToDoubleSeconds(absl::Now() - start));

    StatusOr<std::shared_ptr<ServableModel>> model = registry.Get("job-unet");
    const BatcherStats before = (*model)->batcher_stats();
    std::vector<std::vector<double>> per_client(clients);
    std::vector<std::thread> workers;
    start = absl::Now();
    for (int c = 0; c < clients; ++c) {
      workers.emplace_back([&, c] {
        for (int i = 0; i < requests / clients; ++i) per_client[c].push_back(segment(c + i));
      });
    }
    for (std::thread& t : workers) t.join();
    const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    std::vector<double> all;
    for (const auto& v : per_client) all.insert(all.end(), v.begin(), v.end());
    const Summary many = Summarise(all, seconds);

    BatcherStats stats = (*model)->batcher_stats();  // of the concurrent phase only
    stats.batches -= before.batches;
    stats.requests -= before.requests;
    for (size_t size = 0; size < stats.batch_size_counts.size(); ++size) {
      stats.batch_size_counts[size] -= before.batch_size_counts[size];
    }
    std::printf(
        "batching %-3s (max %d, delay %.1f ms): 1 client: median %.2f ms, p90 %.2f ms, %.1f img/s "
        "| %d clients: "
        "median %.2f ms, p90 %.2f ms, %.1f img/s | mean batch %.2f\n",
        max_batch > 1 ? "on" : "off", max_batch, max_batch > 1 ? delay_ms : 0.0, one.median_ms,
        one.p90_ms, one.images_per_second, clients, many.median_ms, many.p90_ms,
        many.images_per_second,
        static_cast<double>(stats.requests) / std::max<int64_t>(1, stats.batches));
    std::printf("  batch sizes with %d clients:", clients);
    for (size_t size = 1; size < stats.batch_size_counts.size(); ++size) {
      if (stats.batch_size_counts[size] > 0) {
        std::printf(" %zux%lld", size, static_cast<long long>(stats.batch_size_counts[size]));
      }
    }
    std::printf("\n");
  }
  return 0;
}

}  // namespace
}  // namespace selene::serving

int main(int argc, char** argv) { return selene::serving::Main(argc, argv); }
