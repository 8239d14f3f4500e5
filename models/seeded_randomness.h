// Where a network's randomness comes from, so that a training job's result depends only on its
// spec, its seed and its thread count, whatever else the process runs:
//  - initial weights draw from torch's global CPU generator (torch::nn::init has no generator
//    argument): BuildNetwork runs under SeededGlobalGenerator, which seeds it and holds a
//    process-wide lock for the construction;
//  - dropout masks draw from a generator owned by the calling thread, which the trainer seeds
//    before every step, so two jobs on two threads never share a stream and a run resumed at a
//    step repeats the masks it would have drawn.
// A network that drew from torch's global generator during training (torch::nn::Dropout) would
// share it with every other job: networks use ThreadSeededDropout instead.
// On CUDA, dropout uses the device's global generator (README: what is reproducible on GPUs).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <mutex>

namespace selene::models {

// Holds torch's global generator, seeded, for as long as it lives. Every construction that draws
// initial weights goes through one of these.
class SeededGlobalGenerator {
 public:
  explicit SeededGlobalGenerator(uint64_t seed);
  SeededGlobalGenerator(const SeededGlobalGenerator&) = delete;
  SeededGlobalGenerator& operator=(const SeededGlobalGenerator&) = delete;

 private:
  std::lock_guard<std::mutex> lock_;
};

// Seeds the calling thread's generator (dropout on the CPU).
void SeedThreadGenerator(uint64_t seed);

// Inverted dropout with probability `p` while `training`, masks from the thread's generator on
// the CPU; the identity otherwise.
torch::Tensor ThreadSeededDropout(const torch::Tensor& x, double p, bool training);

}  // namespace selene::models
