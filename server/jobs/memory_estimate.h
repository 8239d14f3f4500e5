// A rough estimate of the memory one training job needs, from its spec alone and without torch,
// so the server can refuse at submit a job that could never run on it (a U-Net of base width
// 100000 asks for hundreds of GB) instead of failing it later. Parameters are counted exactly
// from the architecture (the same layers models/ builds); activations follow a per-family model
// of the tensors autograd keeps for the backward pass, calibrated against measured runs (see
// memory_estimate.cc). Everything is computed in doubles: absurd specs give huge finite numbers,
// never an overflow.
#pragma once

#include <cstdint>
#include <string>

#include "models/model_options.h"
#include "selene/v1/job_spec.pb.h"
#include "spec/resolved_job_spec.h"

namespace selene::jobs {

struct MemoryEstimate {
  double parameter_count = 0;  // every parameter, frozen ones too
  // Bytes, all float32 unless said otherwise.
  double parameters = 0;   // the weights
  double gradients = 0;    // one per trainable parameter
  double optimizer = 0;    // AdamW/Adam: 2 per trainable parameter; SGD: 1 with momentum, else 0
  double activations = 0;  // what the forward pass keeps for backward, plus the batch itself
  double data = 0;         // the decoded data set held in memory (uint8 images, targets)
  // False for a file data set whose item count was not given: `data` is 0 then.
  bool data_known = true;

  double total() const { return parameters + gradients + optimizer + activations + data; }
};

// The estimate for `spec`.
// `data_items`: the images a file data set holds, when the caller counted them; < 0 = unknown:
// Tiny ImageNet then assumes its full 550 images per class, MOON and segmentation folders count
// no data. Synthetic sets use data.num_samples.
MemoryEstimate EstimateJobMemory(const spec::ResolvedJobSpec& spec, int64_t data_items = -1);

// The parameter count of the network `spec` describes, as models::CountSpecParameters gives it
// but without building anything: analytic, so a width of 10^6 costs nothing. With
// fit_width_to_budget, the count of the widest width that fits the budget (the narrowest when
// none does).
double CountNetworkParameters(const models::NetworkSpec& spec);

// 1536 -> "1.5 KiB", 41.2 * 2^30 -> "41.2 GiB"; bytes below 1 KiB as "17 B"; up to EiB.
std::string FormatBytes(double bytes);

// "about 41.2 GiB (parameters 1.1 GiB, gradients 1.1 GiB, optimizer 2.2 GiB, activations
// 37.0 GiB, data 0.9 GiB)"; a file data set of unknown size says "data not counted".
std::string DescribeEstimate(const MemoryEstimate& estimate);

}  // namespace selene::jobs
