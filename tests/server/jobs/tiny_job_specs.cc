#include "tests/server/jobs/tiny_job_specs.h"

#include <gtest/gtest.h>

#include "server/jobs/job_spec.h"

namespace selene::jobs::testing {
namespace {

constexpr char kEncoder[] =
    R"json({"stem_width": 8, "stage_widths": [8, 8, 8, 8], "stage_blocks": [1, 1, 1, 1]})json";

v1::JobSpec Parse(const std::string& json) {
  StatusOr<v1::JobSpec> spec = ParseJobSpecJson(json);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return spec.ok() ? *spec : v1::JobSpec();
}

}  // namespace

v1::JobSpec MoonSpec(const std::string& name, int64_t epochs) {
  v1::JobSpec spec = Parse(R"json({
    "task": "binary_segmentation",
    "model": {"unet": {"base_width": 4}},
    "data": {"kind": "synthetic_moon", "num_samples": 16, "image_size": 32},
    "training": {"batch_size": 4, "monitor": "dice"}
  })json");
  spec.set_name(name);
  spec.mutable_training()->set_epochs(epochs);
  return spec;
}

v1::JobSpec ClassifierSpec(const std::string& name) {
  v1::JobSpec spec = Parse(std::string(R"json({
    "task": "classification",
    "model": {"classifier": )json") +
                           kEncoder + R"json(},
    "data": {"kind": "synthetic_shapes", "num_samples": 32, "image_size": 32},
    "training": {"epochs": 2, "batch_size": 8}
  })json");
  spec.set_name(name);
  return spec;
}

v1::JobSpec EncoderUNetSpec(const std::string& name, const std::string& encoder_job_id) {
  v1::JobSpec spec = Parse(std::string(R"json({
    "task": "binary_segmentation",
    "model": {"encoder_unet": {"encoder": )json") +
                           kEncoder + R"json(, "decoder_base_width": 4,
              "encoder_mode": "frozen"}},
    "data": {"kind": "synthetic_moon", "num_samples": 16, "image_size": 32},
    "training": {"epochs": 2, "batch_size": 4}
  })json");
  spec.set_name(name);
  spec.mutable_model()->mutable_encoder_unet()->set_encoder_job_id(encoder_job_id);
  return spec;
}

}  // namespace selene::jobs::testing
