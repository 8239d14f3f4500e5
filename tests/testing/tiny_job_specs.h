// Tiny job specs that train in about a second on the CPU, shared by the job, scheduler, service
// and server tests: a binary U-Net on synthetic moon, a classifier on synthetic shapes, and an
// encoder U-Net (frozen) over that classifier's encoder.
#pragma once

#include <cstdint>
#include <string>

#include "selene/v1/job_spec.pb.h"
#include "spec/resolved_job_spec.h"

namespace selene::testing {

// The moon spec's sizes. The defaults are the tiny moon; tests whose numbers or messages follow
// from other sizes name them.
struct MoonSpecOptions {
  std::string name;
  int64_t epochs = 2;            // 0 leaves it unset (the default)
  int64_t base_width = 4;        // model.unet.base_width
  int64_t num_samples = 16;      // data.num_samples
  int64_t image_size = 32;       // data.image_size
  int64_t batch_size = 4;        // training.batch_size
  std::string monitor = "dice";  // "" leaves it unset (the default for the task)
};

// A binary U-Net on synthetic moon, as `options` say.
v1::JobSpec MoonSpec(const MoonSpecOptions& options);
// The tiny moon: U-Net base 4, 16 samples of 32x32, batch 4, monitoring dice.
v1::JobSpec MoonSpec(const std::string& name, int64_t epochs);
v1::JobSpec ClassifierSpec(const std::string& name);  // stem 8, stages 8, 32x32
// Encoder U-Net over ClassifierSpec's classifier (frozen), trained on synthetic moon.
v1::JobSpec EncoderUNetSpec(const std::string& name, const std::string& encoder_job_id);

// `spec` resolved (spec/resolved_job_spec.h); a spec that does not resolve fails the test and
// aborts it, naming every problem.
spec::ResolvedJobSpec MustResolve(const v1::JobSpec& spec);

}  // namespace selene::testing
