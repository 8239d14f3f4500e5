// Request filters that take an enum (ListJobs' state, ListModels' task). Proto3 enums are open:
// the wire may carry a number no value has, which a filter would silently match nothing (or,
// worse, everything) with. Such a value is refused instead, naming the field.
#pragma once

#include <google/protobuf/descriptor.h>

#include "absl/strings/string_view.h"
#include "common/status.h"

namespace selene::api {

// OK when `value` is one of `type`'s values; else InvalidArgument, e.g. "state: 42 is not a
// JobState (JOB_STATE_UNSPECIFIED = all, JOB_STATE_QUEUED, ...)".
Status CheckEnumFilter(absl::string_view field, int value,
                       const google::protobuf::EnumDescriptor* type);

}  // namespace selene::api
