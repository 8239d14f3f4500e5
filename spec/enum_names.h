// The names users write for the spec's enum values: full ("OPTIMIZER_KIND_ADAMW"), short
// ("adamw"), any case, or the number. JSON loading, overrides and error messages all use them.
#pragma once

#include <google/protobuf/descriptor.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "selene/v1/job_spec.pb.h"

namespace selene::spec {

// "adamw" for OPTIMIZER_KIND_ADAMW: the value without its enum's prefix, lower case.
std::string ShortEnumName(const google::protobuf::EnumValueDescriptor* value);

// The value `text` names in any of the accepted spellings, or null.
const google::protobuf::EnumValueDescriptor* FindEnumValue(
    const google::protobuf::EnumDescriptor* type, absl::string_view text);

// "sgd, adam, adamw": the values a user may pick (UNSPECIFIED means "default", not a choice).
std::string EnumChoices(const google::protobuf::EnumDescriptor* type);

// The short name of `value` of `type`, or its number when no value has it.
template <typename E>
std::string EnumName(E value, const google::protobuf::EnumDescriptor* type) {
  const google::protobuf::EnumValueDescriptor* found =
      type->FindValueByNumber(static_cast<int>(value));
  return found != nullptr ? ShortEnumName(found) : absl::StrCat(static_cast<int>(value));
}

std::string TaskName(v1::Task task);                // "binary_segmentation"
std::string DataKindName(v1::DataKind kind);        // "tiny_imagenet"
std::string LossName(v1::LossKind kind);            // "bce_dice"
std::string EncoderModeName(v1::EncoderMode mode);  // "fine_tune"

}  // namespace selene::spec
