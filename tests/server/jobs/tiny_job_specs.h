// Tiny job specs that train in about a second on the CPU, shared by the scheduler, service and
// server tests: a binary U-Net on synthetic moon, a classifier on synthetic shapes, and an
// encoder U-Net (frozen) over that classifier's encoder.
#pragma once

#include <cstdint>
#include <string>

#include "selene/v1/job_spec.pb.h"

namespace selene::jobs::testing {

v1::JobSpec MoonSpec(const std::string& name, int64_t epochs);  // U-Net base 4, 32x32
v1::JobSpec ClassifierSpec(const std::string& name);            // stem 8, stages 8, 32x32
// Encoder U-Net over ClassifierSpec's classifier (frozen), trained on synthetic moon.
v1::JobSpec EncoderUNetSpec(const std::string& name, const std::string& encoder_job_id);

}  // namespace selene::jobs::testing
