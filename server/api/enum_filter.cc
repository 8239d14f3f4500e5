#include "server/api/enum_filter.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace selene::api {

Status CheckEnumFilter(absl::string_view field, int value,
                       const google::protobuf::EnumDescriptor* type) {
  if (type->FindValueByNumber(value) != nullptr) return OkStatus();
  std::vector<std::string> names;
  for (int i = 0; i < type->value_count(); ++i) {
    const google::protobuf::EnumValueDescriptor* known = type->value(i);
    names.push_back(known->number() == 0 ? absl::StrCat(known->name(), " = all") : known->name());
  }
  return InvalidArgumentError(absl::StrCat(field, ": ", value, " is not a ", type->name(), " (",
                                           absl::StrJoin(names, ", "), ")"));
}

}  // namespace selene::api
