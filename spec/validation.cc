#include "spec/validation.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "spec/defaults.h"
#include "spec/enum_names.h"
#include "spec/field_paths.h"
#include "spec/validation_internal.h"

namespace selene::spec {
namespace {

namespace pb = ::google::protobuf;
using internal::Errors;

// Proto3 enums are open: JSON or the wire may carry numbers no value has.
void CheckEnumsDefined(const pb::Message& message, const std::string& path, Errors& errors) {
  const pb::Reflection* reflection = message.GetReflection();
  std::vector<const pb::FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const pb::FieldDescriptor* field : fields) {
    const std::string field_path = JoinPath(path, field->name());
    if (field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      if (field->is_repeated()) continue;  // none in the spec
      CheckEnumsDefined(reflection->GetMessage(message, field), field_path, errors);
    } else if (field->cpp_type() == pb::FieldDescriptor::CPPTYPE_ENUM) {
      const int count = field->is_repeated() ? reflection->FieldSize(message, field) : 1;
      for (int i = 0; i < count; ++i) {
        const int number = field->is_repeated()
                               ? reflection->GetRepeatedEnumValue(message, field, i)
                               : reflection->GetEnumValue(message, field);
        if (field->enum_type()->FindValueByNumber(number) == nullptr) {
          errors.Add(field_path,
                     absl::StrCat(number, " is not one of ", EnumChoices(field->enum_type())));
        }
      }
    }
  }
}

// NaN and infinities pass or fail range checks by accident (NaN fails "> 0" but inf passes it)
// and poison training at run time; JSON ("Infinity", "NaN") and the wire can carry them. Every
// float and double of the tree is checked, repeated fields and nested messages included.
void CheckFinite(const pb::Message& message, const std::string& path, Errors& errors) {
  const pb::Reflection* reflection = message.GetReflection();
  std::vector<const pb::FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const pb::FieldDescriptor* field : fields) {
    const std::string field_path = JoinPath(path, field->name());
    const int count = field->is_repeated() ? reflection->FieldSize(message, field) : 1;
    for (int i = 0; i < count; ++i) {
      const std::string element =
          field->is_repeated() ? absl::StrCat(field_path, "[", i, "]") : field_path;
      double value = 0;
      switch (field->cpp_type()) {
        case pb::FieldDescriptor::CPPTYPE_MESSAGE:
          CheckFinite(field->is_repeated() ? reflection->GetRepeatedMessage(message, field, i)
                                           : reflection->GetMessage(message, field),
                      element, errors);
          continue;
        case pb::FieldDescriptor::CPPTYPE_DOUBLE:
          value = field->is_repeated() ? reflection->GetRepeatedDouble(message, field, i)
                                       : reflection->GetDouble(message, field);
          break;
        case pb::FieldDescriptor::CPPTYPE_FLOAT:
          value = field->is_repeated() ? reflection->GetRepeatedFloat(message, field, i)
                                       : reflection->GetFloat(message, field);
          break;
        default:
          continue;
      }
      if (!std::isfinite(value)) {
        errors.Add(element, absl::StrCat(value, " is not a finite number"));
      }
    }
  }
}

}  // namespace

Status ValidateJobSpec(const v1::JobSpec& original) {
  Errors errors;
  CheckEnumsDefined(original, "", errors);
  CheckFinite(original, "", errors);
  // The checks below assume known enum values and finite numbers.
  if (!errors.empty()) return errors.ToStatus();
  const v1::JobSpec spec = ResolveDefaults(original);
  if (spec.task() == v1::TASK_UNSPECIFIED) {
    errors.Add("task", absl::StrCat("not set (", EnumChoices(v1::Task_descriptor()), ")"));
  }
  const int64_t classes = ExpectedNumClasses(spec);
  ValidateData(spec, classes, errors);
  ValidateModel(spec, classes, errors);
  ValidateTraining(spec, classes, errors);
  return errors.ToStatus();
}

}  // namespace selene::spec
