#include "spec/overrides.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "spec/enum_names.h"
#include "spec/field_paths.h"

namespace selene::spec {
namespace {

namespace pb = ::google::protobuf;

std::string TypeDescription(const pb::FieldDescriptor* field) {
  switch (field->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_INT32:
      return "an integer (int32)";
    case pb::FieldDescriptor::CPPTYPE_INT64:
      return "an integer (int64)";
    case pb::FieldDescriptor::CPPTYPE_UINT32:
      return "a non-negative integer (uint32)";
    case pb::FieldDescriptor::CPPTYPE_UINT64:
      return "a non-negative integer (uint64)";
    case pb::FieldDescriptor::CPPTYPE_DOUBLE:
    case pb::FieldDescriptor::CPPTYPE_FLOAT:
      return "a finite number";
    case pb::FieldDescriptor::CPPTYPE_BOOL:
      return "a bool (true or false)";
    case pb::FieldDescriptor::CPPTYPE_ENUM:
      return absl::StrCat("one of ", EnumChoices(field->enum_type()));
    case pb::FieldDescriptor::CPPTYPE_STRING:
      return "a string";
    case pb::FieldDescriptor::CPPTYPE_MESSAGE:
      return "a message";
  }
  return "a value";
}

// Sets (or, for repeated fields, adds) one element parsed from `text`; false when it does not
// parse as the field's type.
bool SetScalar(pb::Message* message, const pb::FieldDescriptor* field, absl::string_view raw) {
  const pb::Reflection* reflection = message->GetReflection();
  const bool add = field->is_repeated();
  const absl::string_view text = field->cpp_type() == pb::FieldDescriptor::CPPTYPE_STRING
                                     ? raw
                                     : absl::StripAsciiWhitespace(raw);
  switch (field->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_INT32: {
      int32_t v = 0;
      if (!absl::SimpleAtoi(text, &v)) return false;
      add ? reflection->AddInt32(message, field, v) : reflection->SetInt32(message, field, v);
      return true;
    }
    case pb::FieldDescriptor::CPPTYPE_INT64: {
      int64_t v = 0;
      if (!absl::SimpleAtoi(text, &v)) return false;
      add ? reflection->AddInt64(message, field, v) : reflection->SetInt64(message, field, v);
      return true;
    }
    case pb::FieldDescriptor::CPPTYPE_UINT32: {
      uint32_t v = 0;
      if (!absl::SimpleAtoi(text, &v)) return false;
      add ? reflection->AddUInt32(message, field, v) : reflection->SetUInt32(message, field, v);
      return true;
    }
    case pb::FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t v = 0;
      if (!absl::SimpleAtoi(text, &v)) return false;
      add ? reflection->AddUInt64(message, field, v) : reflection->SetUInt64(message, field, v);
      return true;
    }
    case pb::FieldDescriptor::CPPTYPE_DOUBLE: {
      double v = 0;
      if (!absl::SimpleAtod(text, &v) || !std::isfinite(v)) return false;
      add ? reflection->AddDouble(message, field, v) : reflection->SetDouble(message, field, v);
      return true;
    }
    case pb::FieldDescriptor::CPPTYPE_FLOAT: {
      float v = 0;
      if (!absl::SimpleAtof(text, &v) || !std::isfinite(v)) return false;
      add ? reflection->AddFloat(message, field, v) : reflection->SetFloat(message, field, v);
      return true;
    }
    case pb::FieldDescriptor::CPPTYPE_BOOL: {
      bool v = false;
      if (!absl::SimpleAtob(text, &v)) return false;
      add ? reflection->AddBool(message, field, v) : reflection->SetBool(message, field, v);
      return true;
    }
    case pb::FieldDescriptor::CPPTYPE_ENUM: {
      const pb::EnumValueDescriptor* v = FindEnumValue(field->enum_type(), text);
      if (v == nullptr) return false;
      add ? reflection->AddEnum(message, field, v) : reflection->SetEnum(message, field, v);
      return true;
    }
    case pb::FieldDescriptor::CPPTYPE_STRING: {
      const std::string v(text);
      add ? reflection->AddString(message, field, v) : reflection->SetString(message, field, v);
      return true;
    }
    case pb::FieldDescriptor::CPPTYPE_MESSAGE:
      return false;
  }
  return false;
}

}  // namespace

Status ApplyOverride(v1::JobSpec* spec, absl::string_view assignment) {
  const size_t equals = assignment.find('=');
  if (equals == absl::string_view::npos) {
    return InvalidArgumentError(
        absl::StrCat("override \"", assignment, "\": expected field.path=value"));
  }
  const absl::string_view path = absl::StripAsciiWhitespace(assignment.substr(0, equals));
  const absl::string_view value = assignment.substr(equals + 1);
  if (path.empty()) {
    return InvalidArgumentError(
        absl::StrCat("override \"", assignment, "\": the field path is empty"));
  }
  const std::vector<absl::string_view> parts = absl::StrSplit(path, '.');
  pb::Message* message = spec;
  std::string walked;  // proto names of the components found so far
  for (size_t i = 0; i < parts.size(); ++i) {
    const pb::Descriptor* type = message->GetDescriptor();
    const pb::FieldDescriptor* field = FindField(type, parts[i]);
    if (field == nullptr) {
      return InvalidArgumentError(absl::StrCat(
          JoinPath(walked, parts[i]), ": unknown field \"", parts[i], "\"",
          walked.empty() ? "" : absl::StrCat(" in ", walked), "; valid fields: ", FieldList(type)));
    }
    const std::string parent = walked;
    walked = JoinPath(walked, field->name());
    const pb::Reflection* reflection = message->GetReflection();
    const bool last = i + 1 == parts.size();
    if (field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      if (last) {
        return InvalidArgumentError(absl::StrCat(walked, ": is a message; set one of its fields (",
                                                 FieldList(field->message_type()), ")"));
      }
      if (field->is_repeated()) {
        return InvalidArgumentError(
            absl::StrCat(walked, ": repeated messages cannot be set by path"));
      }
      // Switching a oneof (e.g. the model family) by override would silently drop the other
      // member's settings; a spec edit makes that explicit.
      if (const pb::OneofDescriptor* oneof = field->containing_oneof()) {
        const pb::FieldDescriptor* chosen = reflection->GetOneofFieldDescriptor(*message, oneof);
        if (chosen != nullptr && chosen != field) {
          return InvalidArgumentError(absl::StrCat(walked, ": the spec uses ",
                                                   JoinPath(parent, chosen->name()), " (",
                                                   oneof->name(), " holds one of them)"));
        }
      }
      message = reflection->MutableMessage(message, field);
      continue;
    }
    if (!last) {
      return InvalidArgumentError(absl::StrCat(walked, ": is ", TypeDescription(field),
                                               ", not a message; it has no field \"", parts[i + 1],
                                               "\""));
    }
    const auto bad_value = [&](absl::string_view text) {
      return InvalidArgumentError(
          absl::StrCat(walked, ": \"", text, "\" is not ", TypeDescription(field)));
    };
    if (field->is_repeated()) {
      reflection->ClearField(message, field);
      if (absl::StripAsciiWhitespace(value).empty()) return OkStatus();
      for (absl::string_view element : absl::StrSplit(value, ',')) {
        if (!SetScalar(message, field, element)) return bad_value(element);
      }
      return OkStatus();
    }
    if (!SetScalar(message, field, value)) return bad_value(value);
    return OkStatus();
  }
  return OkStatus();  // not reached: the last component always returns
}

Status ApplyOverrides(v1::JobSpec* spec, const std::vector<std::string>& assignments) {
  for (const std::string& assignment : assignments) {
    SELENE_RETURN_IF_ERROR(ApplyOverride(spec, assignment));
  }
  return OkStatus();
}

}  // namespace selene::spec
