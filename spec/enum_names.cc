#include "spec/enum_names.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"

namespace selene::spec {
namespace {

namespace pb = ::google::protobuf;

// The prefix every value of `type` carries, taken from its zero value "<PREFIX>UNSPECIFIED".
std::string EnumPrefix(const pb::EnumDescriptor* type) {
  const pb::EnumValueDescriptor* zero = type->FindValueByNumber(0);
  if (zero != nullptr && absl::EndsWith(zero->name(), "_UNSPECIFIED")) {
    return zero->name().substr(0, zero->name().size() - std::string("UNSPECIFIED").size());
  }
  return "";
}

}  // namespace

std::string ShortEnumName(const pb::EnumValueDescriptor* value) {
  absl::string_view name = value->name();
  const std::string prefix = EnumPrefix(value->type());
  absl::ConsumePrefix(&name, prefix);
  return absl::AsciiStrToLower(name);
}

const pb::EnumValueDescriptor* FindEnumValue(const pb::EnumDescriptor* type,
                                             absl::string_view text) {
  std::string upper =
      absl::AsciiStrToUpper(absl::StrReplaceAll(absl::StripAsciiWhitespace(text), {{"-", "_"}}));
  if (upper.empty()) return nullptr;
  if (const auto* value = type->FindValueByName(upper)) return value;
  if (const auto* value = type->FindValueByName(EnumPrefix(type) + upper)) return value;
  int number = 0;
  if (absl::SimpleAtoi(text, &number)) return type->FindValueByNumber(number);
  return nullptr;
}

std::string EnumChoices(const pb::EnumDescriptor* type) {
  std::vector<std::string> names;
  for (int i = 0; i < type->value_count(); ++i) {
    if (type->value(i)->number() != 0) names.push_back(ShortEnumName(type->value(i)));
  }
  return absl::StrJoin(names, ", ");
}

std::string TaskName(v1::Task task) { return EnumName(task, v1::Task_descriptor()); }
std::string DataKindName(v1::DataKind kind) { return EnumName(kind, v1::DataKind_descriptor()); }
std::string LossName(v1::LossKind kind) { return EnumName(kind, v1::LossKind_descriptor()); }
std::string EncoderModeName(v1::EncoderMode mode) {
  return EnumName(mode, v1::EncoderMode_descriptor());
}

}  // namespace selene::spec
