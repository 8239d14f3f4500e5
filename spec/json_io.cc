#include "spec/json_io.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "spec/enum_names.h"
#include "spec/field_paths.h"

namespace selene::spec {
namespace {

namespace pb = ::google::protobuf;

std::string StatusText(const pb::util::Status& status) {
  // The parser's JSON errors add a context line and a caret under it; callers print one line,
  // so only the first line (the message itself) is kept.
  const absl::string_view text(status.message().data(), status.message().size());
  const absl::string_view first = text.substr(0, text.find('\n'));
  return std::string(absl::StripAsciiWhitespace(first));
}

bool IsIntegerField(const pb::FieldDescriptor* field) {
  switch (field->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_INT32:
    case pb::FieldDescriptor::CPPTYPE_INT64:
    case pb::FieldDescriptor::CPPTYPE_UINT32:
    case pb::FieldDescriptor::CPPTYPE_UINT64:
      return true;
    default:
      return false;
  }
}

Status NormalizeJsonObject(const pb::Descriptor* type, pb::Struct* object, const std::string& path);

Status NormalizeJsonElement(const pb::FieldDescriptor* field, pb::Value* value,
                            const std::string& path) {
  if (field->cpp_type() == pb::FieldDescriptor::CPPTYPE_ENUM &&
      value->kind_case() == pb::Value::kStringValue) {
    if (const auto* found = FindEnumValue(field->enum_type(), value->string_value())) {
      value->set_string_value(found->name());
    } else {
      return InvalidArgumentError(absl::StrCat(path, ": \"", value->string_value(),
                                               "\" is not one of ",
                                               EnumChoices(field->enum_type())));
    }
  } else if (field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE &&
             value->kind_case() == pb::Value::kStructValue &&
             field->message_type()->file() == v1::JobSpec::descriptor()->file()) {
    return NormalizeJsonObject(field->message_type(), value->mutable_struct_value(), path);
  } else if (IsIntegerField(field) && value->kind_case() == pb::Value::kNumberValue &&
             std::fabs(value->number_value()) > 9007199254740992.0) {
    // The detour through google.protobuf.Value holds numbers as doubles.
    return InvalidArgumentError(
        absl::StrCat(path, ": integers above 2^53 must be written as JSON strings"));
  }
  return OkStatus();
}

Status NormalizeJsonObject(const pb::Descriptor* type, pb::Struct* object,
                           const std::string& path) {
  for (auto& [key, value] : *object->mutable_fields()) {
    const pb::FieldDescriptor* field = FindField(type, key);
    if (field == nullptr) continue;  // the parser reports unknown fields
    const std::string field_path = JoinPath(path, field->name());
    if (field->is_repeated() && value.kind_case() == pb::Value::kListValue) {
      for (pb::Value& element : *value.mutable_list_value()->mutable_values()) {
        SELENE_RETURN_IF_ERROR(NormalizeJsonElement(field, &element, field_path));
      }
    } else {
      SELENE_RETURN_IF_ERROR(NormalizeJsonElement(field, &value, field_path));
    }
  }
  return OkStatus();
}
}  // namespace

StatusOr<v1::JobSpec> ParseJobSpecJson(absl::string_view json, absl::string_view source) {
  pb::Value root;
  pb::util::Status parsed = pb::util::JsonStringToMessage(std::string(json), &root);
  if (!parsed.ok()) {
    return InvalidArgumentError(absl::StrCat(source, ": invalid JSON: ", StatusText(parsed)));
  }
  if (root.kind_case() != pb::Value::kStructValue) {
    return InvalidArgumentError(absl::StrCat(source, ": a job spec must be a JSON object"));
  }
  Status normalized =
      NormalizeJsonObject(v1::JobSpec::descriptor(), root.mutable_struct_value(), "");
  if (!normalized.ok()) {
    return InvalidArgumentError(absl::StrCat(source, ": ", normalized.message()));
  }
  std::string canonical;
  parsed = pb::util::MessageToJsonString(root, &canonical);
  if (!parsed.ok()) return InternalError(StatusText(parsed));
  v1::JobSpec spec;
  parsed = pb::util::JsonStringToMessage(canonical, &spec);
  if (!parsed.ok()) {
    return InvalidArgumentError(absl::StrCat(source, ": ", StatusText(parsed)));
  }
  return spec;
}

StatusOr<v1::JobSpec> LoadJobSpecFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return NotFoundError(absl::StrCat(path, ": cannot open the spec file"));
  std::stringstream contents;
  contents << file.rdbuf();
  if (file.bad()) return NotFoundError(absl::StrCat(path, ": cannot read the spec file"));
  return ParseJobSpecJson(contents.str(), path);
}

std::string JobSpecToJson(const v1::JobSpec& spec, bool pretty) {
  pb::util::JsonPrintOptions options;
  options.add_whitespace = pretty;
  options.preserve_proto_field_names = true;
  std::string json;
  // Printing a valid message cannot fail.
  (void)pb::util::MessageToJsonString(spec, &json, options);
  return json;
}

}  // namespace selene::spec
