// `field.path=value` overrides of a job spec (selene-train --set, selene submit --set), set by
// reflection so every field of the spec can be overridden without code per field.
#pragma once

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/status.h"
#include "selene/v1/job_spec.pb.h"

namespace selene::spec {

// Sets one field by dotted path, e.g. "training.optimizer.lr=0.01". Path components may be
// proto names or JSON names. Values: numbers, bools (true/false/1/0/yes/no), strings, enum
// names (any case, with or without the enum's prefix, or the number), comma lists for repeated
// fields (an empty value clears them). Message fields on the way are created; a oneof member
// other than the one already set is refused. Errors (InvalidArgument) name the first unknown
// path component with the valid fields at that level, or the field and its expected type.
Status ApplyOverride(v1::JobSpec* spec, absl::string_view assignment);
Status ApplyOverrides(v1::JobSpec* spec, const std::vector<std::string>& assignments);

}  // namespace selene::spec
