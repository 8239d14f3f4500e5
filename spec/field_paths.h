// Fields of the spec's messages by the names users write (proto names or JSON names), and the
// dotted paths ("training.optimizer.lr") that loading, overrides and validation report.
#pragma once

#include <google/protobuf/descriptor.h>

#include <string>

#include "absl/strings/string_view.h"

namespace selene::spec {

// The field of `type` whose proto name or JSON name is `name`, or null.
const google::protobuf::FieldDescriptor* FindField(const google::protobuf::Descriptor* type,
                                                   absl::string_view name);

// "lr, weight_decay, momentum": the proto names of every field of `type`.
std::string FieldList(const google::protobuf::Descriptor* type);

// "training.optimizer" + "lr" -> "training.optimizer.lr"; an empty parent gives "lr".
std::string JoinPath(absl::string_view parent, absl::string_view name);

}  // namespace selene::spec
