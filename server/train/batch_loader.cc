#include "server/train/batch_loader.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <numeric>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

// OpenMP's team size for the calling thread alone. Declared weak so the engine links without
// OpenMP too (the address is then null); LibTorch loads the runtime it was built with.
extern "C" void omp_set_num_threads(int) __attribute__((weak));

namespace selene::train {
namespace {

// Ready batches held for the consumer (plus the one the worker is making): enough to ride out
// the jitter of a step without holding many device batches in memory.
constexpr size_t kQueueCapacity = 2;

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t EpochSeed(uint64_t seed, int64_t epoch) {
  return Mix(Mix(seed) ^ static_cast<uint64_t>(epoch));
}

uint64_t BatchSeed(uint64_t seed, int64_t epoch, int64_t batch) {
  return Mix(EpochSeed(seed, epoch) + static_cast<uint64_t>(batch));
}

// Fisher-Yates over SplitMix64, written out so the order is a function of (seed, epoch) alone:
// the same with every LibTorch version and untouched by torch's global generator, which the
// trainer reseeds per epoch.
torch::Tensor EpochOrder(int64_t count, bool shuffle, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<size_t>(count));
  std::iota(order.begin(), order.end(), int64_t{0});
  if (shuffle) {
    uint64_t state = EpochSeed(seed, epoch);
    for (int64_t i = count - 1; i > 0; --i) {
      state = Mix(state);
      std::swap(order[i], order[state % static_cast<uint64_t>(i + 1)]);
    }
  }
  return torch::tensor(order, torch::kLong);
}

// Per-channel mean and 1/std as [1, C, 1, 1]; statistics with more entries than channels use the
// first C (a grey image with RGB statistics), a single entry serves every channel.
std::pair<torch::Tensor, torch::Tensor> ChannelStats(const Normalization& norm, int64_t channels) {
  TORCH_CHECK(!norm.mean.empty() && !norm.std.empty(), "normalisation needs mean and std");
  auto pick = [channels](const std::vector<double>& values, const char* name) {
    TORCH_CHECK(values.size() == 1 || static_cast<int64_t>(values.size()) >= channels,
                "normalisation ", name, " has ", values.size(), " entries for ", channels,
                " channels");
    std::vector<float> out(static_cast<size_t>(channels));
    for (int64_t c = 0; c < channels; ++c) {
      out[c] = static_cast<float>(values.size() == 1 ? values[0] : values[c]);
    }
    return out;
  };
  std::vector<float> mean = pick(norm.mean, "mean");
  std::vector<float> std = pick(norm.std, "std");
  for (float s : std) TORCH_CHECK(s > 0.0f, "normalisation std must be > 0");
  return {torch::tensor(mean).view({1, channels, 1, 1}),
          torch::tensor(std).view({1, channels, 1, 1})};
}

}  // namespace

torch::Tensor NormalizeImages(const torch::Tensor& images_u8, const Normalization& norm,
                              torch::Device device) {
  TORCH_CHECK(images_u8.dim() == 4, "NormalizeImages expects [B, C, H, W], got ",
              images_u8.sizes());
  auto [mean, std] = ChannelStats(norm, images_u8.size(1));
  // Move the uint8 bytes (a quarter of the float size), then convert on the device.
  torch::Tensor x = images_u8.to(device).to(torch::kFloat);
  // (x / 255 - mean) / std as one scale and one shift.
  torch::Tensor scale = (1.0 / (255.0 * std)).to(device);
  torch::Tensor shift = (mean / std).to(device);
  return x.mul_(scale).sub_(shift);
}

torch::Tensor NormalizeUnitImages(torch::Tensor images, const Normalization& norm) {
  TORCH_CHECK(images.dim() == 4 && images.is_floating_point(),
              "NormalizeUnitImages expects float [B, C, H, W], got ", images.scalar_type(), " ",
              images.sizes());
  auto [mean, std] = ChannelStats(norm, images.size(1));
  return images.mul_((1.0 / std).to(images.device())).sub_((mean / std).to(images.device()));
}

class BatchLoader::Impl {
 public:
  Impl(const TensorDataset& dataset, BatchLoaderOptions options)
      : dataset_(dataset), options_(std::move(options)) {
    TORCH_CHECK(options_.batch_size > 0, "batch_size must be > 0");
    TORCH_CHECK(options_.resize_to >= 0, "resize_to must be >= 0, got ", options_.resize_to);
    const int64_t n = dataset_.size();
    if (n > 0) {
      TORCH_CHECK(dataset_.images.dim() == 4 && dataset_.images.scalar_type() == torch::kUInt8,
                  "BatchLoader expects uint8 images [N, C, H, W]");
      TORCH_CHECK(dataset_.targets.defined() && dataset_.targets.size(0) == n,
                  "BatchLoader: targets must have one entry per image");
    }
    batches_ = options_.drop_last ? n / options_.batch_size
                                  : (n + options_.batch_size - 1) / options_.batch_size;
  }

  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      ++generation_;
    }
    worker_wake_.notify_all();
    if (worker_.joinable()) worker_.join();
  }

  void StartEpoch(int64_t epoch) {
    torch::Tensor order = EpochOrder(dataset_.size(), options_.shuffle, options_.seed, epoch);
    {
      std::lock_guard<std::mutex> lock(mu_);
      // A new generation makes the worker drop whatever it is making for the old pass.
      ++generation_;
      epoch_ = epoch;
      order_ = std::move(order);
      queue_.clear();
      error_ = nullptr;
      next_to_make_ = 0;
      next_to_hand_ = 0;
      wait_seconds_ = 0.0;
      started_ = true;
    }
    if (options_.prefetch && !worker_.joinable() && batches_ > 0) {
      worker_ = std::thread([this] { WorkerLoop(); });
    }
    worker_wake_.notify_all();
  }

  std::optional<Batch> Next() {
    const auto start = std::chrono::steady_clock::now();
    std::unique_lock<std::mutex> lock(mu_);
    if (!started_ || next_to_hand_ >= batches_) return std::nullopt;
    if (!options_.prefetch) {
      // Inline: the caller waits for the whole batch; count that as data wait.
      const int64_t index = next_to_hand_++;
      const int64_t epoch = epoch_;
      torch::Tensor order = order_;
      lock.unlock();
      std::optional<Batch> batch;
      try {
        batch = MakeBatch(order, epoch, index);
      } catch (...) {
        lock.lock();
        next_to_hand_ = batches_;  // the pass ends with its error
        wait_seconds_ += SecondsSince(start);
        throw;
      }
      lock.lock();
      wait_seconds_ += SecondsSince(start);
      return batch;
    }
    batch_ready_.wait(lock, [this] { return !queue_.empty() || error_ != nullptr; });
    wait_seconds_ += SecondsSince(start);
    if (queue_.empty()) {
      // Batches made before the failure were handed out first; now the pass ends with it.
      std::exception_ptr error = std::exchange(error_, nullptr);
      next_to_hand_ = batches_;
      std::rethrow_exception(error);
    }
    Batch batch = std::move(queue_.front());
    queue_.pop_front();
    ++next_to_hand_;
    lock.unlock();
    worker_wake_.notify_all();
    return batch;
  }

  int64_t batches_per_epoch() const { return batches_; }

  double wait_seconds() const {
    std::lock_guard<std::mutex> lock(mu_);
    return wait_seconds_;
  }

 private:
  static double SecondsSince(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  Batch MakeBatch(const torch::Tensor& order, int64_t epoch, int64_t index) const {
    torch::NoGradGuard no_grad;
    namespace F = torch::nn::functional;
    const int64_t n = dataset_.size();
    const int64_t begin = index * options_.batch_size;
    const int64_t end = std::min(n, begin + options_.batch_size);
    Batch batch;
    batch.indices = order.slice(0, begin, end).clone();
    // Move the uint8 bytes (a quarter of the float size), then convert on the device.
    batch.images = dataset_.images.index_select(0, batch.indices)
                       .to(options_.device)
                       .to(torch::kFloat)
                       .mul_(1.0 / 255.0);
    torch::Tensor targets = dataset_.targets.index_select(0, batch.indices).to(options_.device);
    const bool segmentation = dataset_.task != Task::kClassification;
    const int64_t side = options_.resize_to;
    const bool resize = side > 0 && (batch.images.size(2) != side || batch.images.size(3) != side);
    if (resize) {
      const std::vector<int64_t> size = {side, side};
      batch.images = F::interpolate(
          batch.images,
          F::InterpolateFuncOptions().size(size).mode(torch::kBilinear).align_corners(false));
      if (segmentation) {
        // Nearest keeps every mask value a label (or the ignore index); float because nearest
        // has no integer kernel, exact for any id below 2^24.
        const auto dtype = targets.scalar_type();
        targets = F::interpolate(targets.unsqueeze(1).to(torch::kFloat),
                                 F::InterpolateFuncOptions().size(size).mode(torch::kNearest))
                      .squeeze(1)
                      .to(dtype);
      }
    }
    switch (dataset_.task) {
      case Task::kBinarySegmentation:
        batch.targets = targets.to(torch::kFloat);
        break;
      case Task::kClassification:
      case Task::kMultiClassSegmentation:
        batch.targets = targets.to(torch::kLong);
        break;
    }
    if (options_.transform) options_.transform(batch, BatchSeed(options_.seed, epoch, index));
    batch.images = NormalizeUnitImages(std::move(batch.images), options_.normalization);
    return batch;
  }

  void WorkerLoop() {
    // Batches are small next to a training step, and a second OpenMP team competing with the
    // trainer's for the same cores makes both spin-wait (milliseconds per op on a busy
    // machine), so this thread runs its ops, transforms included, on itself alone. torch sets
    // the team size on first use; it is narrowed afterwards, for this thread only.
    (void)at::get_num_threads();
    if (&omp_set_num_threads != nullptr) omp_set_num_threads(1);
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      worker_wake_.wait(lock, [this] {
        return stop_ || (started_ && error_ == nullptr && next_to_make_ < batches_ &&
                         queue_.size() < kQueueCapacity);
      });
      if (stop_) return;
      const uint64_t generation = generation_;
      const int64_t index = next_to_make_++;
      const int64_t epoch = epoch_;
      torch::Tensor order = order_;
      lock.unlock();
      std::optional<Batch> batch;
      std::exception_ptr error;
      try {
        batch = MakeBatch(order, epoch, index);
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      if (generation != generation_) continue;  // the pass was restarted meanwhile
      if (error != nullptr) {
        error_ = error;
      } else {
        queue_.push_back(std::move(*batch));
      }
      batch_ready_.notify_all();
    }
  }

  const TensorDataset& dataset_;
  const BatchLoaderOptions options_;
  int64_t batches_ = 0;

  mutable std::mutex mu_;
  std::condition_variable worker_wake_;  // work to do, room in the queue, or stop
  std::condition_variable batch_ready_;  // a batch or an error for Next()
  bool stop_ = false;                    // guarded by mu_
  bool started_ = false;                 // guarded by mu_
  uint64_t generation_ = 0;              // guarded by mu_; one per pass
  int64_t epoch_ = 0;                    // guarded by mu_
  torch::Tensor order_;                  // guarded by mu_
  int64_t next_to_make_ = 0;             // guarded by mu_
  int64_t next_to_hand_ = 0;             // guarded by mu_
  std::deque<Batch> queue_;              // guarded by mu_
  std::exception_ptr error_;             // guarded by mu_
  double wait_seconds_ = 0.0;            // guarded by mu_
  std::thread worker_;                   // owned: joined in the destructor
};

BatchLoader::BatchLoader(const TensorDataset& dataset, BatchLoaderOptions options)
    : impl_(std::make_unique<Impl>(dataset, std::move(options))) {}

BatchLoader::~BatchLoader() = default;

void BatchLoader::StartEpoch(int64_t epoch) { impl_->StartEpoch(epoch); }

std::optional<Batch> BatchLoader::Next() { return impl_->Next(); }

int64_t BatchLoader::batches_per_epoch() const { return impl_->batches_per_epoch(); }

double BatchLoader::wait_seconds() const { return impl_->wait_seconds(); }

}  // namespace selene::train
