#include "tests/testing/tiny_job_specs.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "spec/json_io.h"

namespace selene::testing {
namespace {

constexpr char kEncoder[] =
    R"json({"stem_width": 8, "stage_widths": [8, 8, 8, 8], "stage_blocks": [1, 1, 1, 1]})json";

v1::JobSpec Parse(const std::string& json) {
  StatusOr<v1::JobSpec> spec = spec::ParseJobSpecJson(json);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return spec.ok() ? *spec : v1::JobSpec();
}

}  // namespace

v1::JobSpec MoonSpec(const MoonSpecOptions& options) {
  v1::JobSpec spec = Parse(R"json({
    "task": "binary_segmentation",
    "model": {"unet": {}},
    "data": {"kind": "synthetic_moon"}
  })json");
  spec.set_name(options.name);
  spec.mutable_model()->mutable_unet()->set_base_width(options.base_width);
  spec.mutable_data()->set_num_samples(options.num_samples);
  spec.mutable_data()->set_image_size(options.image_size);
  if (options.epochs != 0) spec.mutable_training()->set_epochs(options.epochs);
  spec.mutable_training()->set_batch_size(options.batch_size);
  spec.mutable_training()->set_monitor(options.monitor);
  return spec;
}

v1::JobSpec MoonSpec(const std::string& name, int64_t epochs) {
  MoonSpecOptions options;
  options.name = name;
  options.epochs = epochs;
  return MoonSpec(options);
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

spec::ResolvedJobSpec MustResolve(const v1::JobSpec& spec) {
  StatusOr<spec::ResolvedJobSpec> resolved = spec::ResolvedJobSpec::Resolve(spec);
  if (!resolved.ok()) {
    ADD_FAILURE() << "spec does not resolve: " << resolved.status();
    std::abort();
  }
  return *std::move(resolved);
}

}  // namespace selene::testing
