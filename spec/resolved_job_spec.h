// A job spec resolved and validated once: the only form of a spec the training plan, serving,
// reports, the admission checks and the job store accept. Holding one means the spec passed
// validation, every default is filled in, and its translation into the engine's torch-free
// options (task, network, data request) is done.
#pragma once

#include "common/status.h"
#include "models/model_options.h"
#include "selene/v1/job_spec.pb.h"
#include "server/train/task.h"
#include "spec/engine_options.h"

namespace selene::spec {

class ResolvedJobSpec {
 public:
  // Validates `spec` (InvalidArgument listing every problem, as ValidateJobSpec) and resolves
  // its defaults and translation.
  static StatusOr<ResolvedJobSpec> Resolve(const v1::JobSpec& spec);

  // The spec as it was given: what the user wrote (the server stores and returns this one;
  // "auto" devices and unset fields stay as they were).
  const v1::JobSpec& submitted() const { return submitted_; }
  // The spec with every default filled in (spec/defaults.h): what runs.
  const v1::JobSpec& proto() const { return resolved_; }

  train::Task task() const { return task_; }
  // The network the spec describes; field_prefix "model." (spec/engine_options.h).
  const models::NetworkSpec& network() const { return network_; }
  const DataRequest& data() const { return data_; }

 private:
  ResolvedJobSpec() = default;

  v1::JobSpec submitted_;
  v1::JobSpec resolved_;
  train::Task task_ = train::Task::kClassification;
  models::NetworkSpec network_;
  DataRequest data_;
};

}  // namespace selene::spec
