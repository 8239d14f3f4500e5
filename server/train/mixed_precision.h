// Mixed precision: the forward pass in bfloat16 where it is safe, under torch's autocast.
//
// Convolutions and matrix products then run in bfloat16, which CPUs with AMX or AVX512-BF16
// (oneDNN) and GPUs with bf16 tensor cores execute several times faster than float32, while the
// weights, their gradients and the optimizer state stay float32 (autocast casts a weight per use;
// the backward pass returns float32 gradients). Unlike float16, bfloat16 keeps float32's exponent
// range, so no loss scaling is needed. Losses and metrics are computed in float32.
#pragma once

#include <torch/torch.h>

#include <string>

namespace selene::train {

enum class Precision {
  kFloat32,   // everything float32 (the default)
  kBFloat16,  // autocast: convolutions and matmuls in bfloat16, the rest as autocast decides
};

std::string PrecisionName(Precision precision);  // "fp32", "bf16"

// While alive, ops of this thread on `device` run under autocast to bfloat16 when `precision` is
// kBFloat16; does nothing for kFloat32. Autocast state is thread-local, so the scope covers
// exactly the forward pass run inside it; the previous state is restored on destruction.
class AutocastScope {
 public:
  AutocastScope(Precision precision, const torch::Device& device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  bool cuda_ = false;
  bool was_enabled_ = false;
  at::ScalarType previous_type_ = at::kFloat;
};

}  // namespace selene::train
