#include "models/seeded_randomness.h"

#include <ATen/CPUGeneratorImpl.h>

namespace selene::models {
namespace {

std::mutex& GlobalGeneratorMutex() {
  static std::mutex mutex;
  return mutex;
}

at::Generator& ThreadGenerator() {
  thread_local at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(0);
  return generator;
}

}  // namespace

SeededGlobalGenerator::SeededGlobalGenerator(uint64_t seed) : lock_(GlobalGeneratorMutex()) {
  torch::manual_seed(seed);
}

void SeedThreadGenerator(uint64_t seed) {
  at::Generator& generator = ThreadGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_current_seed(seed);
}

torch::Tensor ThreadSeededDropout(const torch::Tensor& x, double p, bool training) {
  if (!training || p <= 0.0) return x;
  if (!x.device().is_cpu()) return torch::dropout(x, p, /*train=*/true);
  // Drawn in float32 whatever x's type (bf16 under autocast), so the stream does not depend on it.
  torch::Tensor keep = torch::empty(x.sizes(), x.options().dtype(torch::kFloat));
  keep.bernoulli_(1.0 - p, ThreadGenerator());  // takes the generator's lock itself
  return x * (keep.to(x.scalar_type()) / (1.0 - p));
}

}  // namespace selene::models
