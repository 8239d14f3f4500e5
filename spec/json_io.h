// Job specs as JSON (protobuf's JSON mapping): reading a spec file or text, and printing the
// exact spec back (spec.json, checkpoint metadata).
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "common/status.h"
#include "selene/v1/job_spec.pb.h"

namespace selene::spec {

// Parses a spec in protobuf's JSON mapping (proto field names or lowerCamelCase). Enum values
// may be short and in any case ("adamw" for OPTIMIZER_KIND_ADAMW). Errors name `source` (a
// file name, "spec", ...) and the parser's message. Integers above 2^53 must be JSON strings.
StatusOr<v1::JobSpec> ParseJobSpecJson(absl::string_view json, absl::string_view source = "spec");

// Reads and parses a JSON spec file; a missing or unreadable file is NotFound naming the path.
StatusOr<v1::JobSpec> LoadJobSpecFile(const std::string& path);

// The spec as JSON with proto field names and full enum names, only fields that are set: the
// exact spec (spec.json, checkpoint metadata), which ParseJobSpecJson reads back unchanged.
std::string JobSpecToJson(const v1::JobSpec& spec, bool pretty = true);

}  // namespace selene::spec
