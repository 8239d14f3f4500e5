#include "server/jobs/job_spec.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/text_limits.h"

namespace selene::jobs {
namespace {

namespace pb = ::google::protobuf;

// ---------------------------------------------------------------------------------------------
// Enum names: full ("OPTIMIZER_KIND_ADAMW"), short ("adamw"), any case, or the number.

// The prefix every value of `type` carries, taken from its zero value "<PREFIX>UNSPECIFIED".
std::string EnumPrefix(const pb::EnumDescriptor* type) {
  const pb::EnumValueDescriptor* zero = type->FindValueByNumber(0);
  if (zero != nullptr && absl::EndsWith(zero->name(), "_UNSPECIFIED")) {
    return zero->name().substr(0, zero->name().size() - std::string("UNSPECIFIED").size());
  }
  return "";
}

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

// "sgd, adam, adamw": the values a user may pick (UNSPECIFIED means "default", not a choice).
std::string EnumChoices(const pb::EnumDescriptor* type) {
  std::vector<std::string> names;
  for (int i = 0; i < type->value_count(); ++i) {
    if (type->value(i)->number() != 0) names.push_back(ShortEnumName(type->value(i)));
  }
  return absl::StrJoin(names, ", ");
}

template <typename E>
std::string EnumName(E value, const pb::EnumDescriptor* type) {
  const pb::EnumValueDescriptor* found = type->FindValueByNumber(static_cast<int>(value));
  return found != nullptr ? ShortEnumName(found) : absl::StrCat(static_cast<int>(value));
}

std::string TaskName(v1::Task task) { return EnumName(task, v1::Task_descriptor()); }
std::string KindName(v1::DataKind kind) { return EnumName(kind, v1::DataKind_descriptor()); }
std::string LossName(v1::LossKind kind) { return EnumName(kind, v1::LossKind_descriptor()); }
std::string ModeName(v1::EncoderMode mode) { return EnumName(mode, v1::EncoderMode_descriptor()); }

// ---------------------------------------------------------------------------------------------
// Fields by proto name or JSON name.

const pb::FieldDescriptor* FindField(const pb::Descriptor* type, absl::string_view name) {
  for (int i = 0; i < type->field_count(); ++i) {
    const pb::FieldDescriptor* field = type->field(i);
    if (field->name() == name || field->json_name() == name) return field;
  }
  return nullptr;
}

std::string FieldList(const pb::Descriptor* type) {
  std::vector<std::string> names;
  for (int i = 0; i < type->field_count(); ++i) names.push_back(type->field(i)->name());
  return absl::StrJoin(names, ", ");
}

std::string JoinPath(absl::string_view parent, absl::string_view name) {
  return parent.empty() ? std::string(name) : absl::StrCat(parent, ".", name);
}

std::string StatusText(const pb::util::Status& status) {
  // The parser's JSON errors add a context line and a caret under it; callers print one line,
  // so only the first line (the message itself) is kept.
  const absl::string_view text(status.message().data(), status.message().size());
  const absl::string_view first = text.substr(0, text.find('\n'));
  return std::string(absl::StripAsciiWhitespace(first));
}

// ---------------------------------------------------------------------------------------------
// JSON: enum values are rewritten to their full names before protobuf's parser sees them.

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

// ---------------------------------------------------------------------------------------------
// Overrides.

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

// ---------------------------------------------------------------------------------------------
// Validation helpers: each adds "<path>: <reason>" to the list when the check fails. Written so
// that NaN fails every range.

class Errors {
 public:
  // A spec with 100000 repeated entries can have as many problems; past the first few dozen
  // they only make the message too long to send back.
  static constexpr size_t kMaxListed = 50;

  void Add(absl::string_view path, absl::string_view reason) {
    if (errors_.size() < kMaxListed) {
      errors_.push_back(absl::StrCat(path, ": ", reason));
    } else {
      ++unlisted_;
    }
  }
  void AtLeast(absl::string_view path, double value, double low) {
    if (!(value >= low)) Add(path, absl::StrCat(value, " must be >= ", low));
  }
  void Positive(absl::string_view path, double value) {
    if (!(value > 0)) Add(path, absl::StrCat(value, " must be > 0"));
  }
  // Interval [low, high], with open ends when asked: "must be in (0, 1)".
  void InRange(absl::string_view path, double value, double low, double high, bool low_open,
               bool high_open) {
    const bool ok =
        (low_open ? value > low : value >= low) && (high_open ? value < high : value <= high);
    if (!ok) {
      Add(path, absl::StrCat(value, " must be in ", low_open ? "(" : "[", low, ", ", high,
                             high_open ? ")" : "]"));
    }
  }
  // Integer bounds, printed as integers ("1000000000000 must be <= 100000").
  void IntInRange(absl::string_view path, int64_t value, int64_t low, int64_t high) {
    if (value < low) Add(path, absl::StrCat(value, " must be >= ", low));
    if (value > high) Add(path, absl::StrCat(value, " must be <= ", high));
  }
  bool empty() const { return errors_.empty(); }
  Status ToStatus() const {
    if (errors_.empty()) return OkStatus();
    return InvalidArgumentError(
        absl::StrCat(absl::StrJoin(errors_, "; "),
                     unlisted_ > 0 ? absl::StrCat("; and ", unlisted_, " more") : ""));
  }

 private:
  std::vector<std::string> errors_;
  int64_t unlisted_ = 0;
};

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

bool IsSynthetic(v1::DataKind kind) {
  return kind == v1::DATA_KIND_SYNTHETIC_MOON || kind == v1::DATA_KIND_SYNTHETIC_SHAPES ||
         kind == v1::DATA_KIND_SYNTHETIC_SHAPES_SEGMENTATION;
}

bool IsSegmentation(v1::Task task) {
  return task == v1::TASK_BINARY_SEGMENTATION || task == v1::TASK_MULTICLASS_SEGMENTATION;
}

// The tasks each data kind can feed.
bool KindFitsTask(v1::DataKind kind, v1::Task task) {
  switch (kind) {
    case v1::DATA_KIND_SYNTHETIC_MOON:
    case v1::DATA_KIND_MOON:
      return task == v1::TASK_BINARY_SEGMENTATION;
    case v1::DATA_KIND_SYNTHETIC_SHAPES:
    case v1::DATA_KIND_TINY_IMAGENET:
      return task == v1::TASK_CLASSIFICATION;
    case v1::DATA_KIND_SYNTHETIC_SHAPES_SEGMENTATION:
      return task == v1::TASK_MULTICLASS_SEGMENTATION;
    case v1::DATA_KIND_SEGMENTATION_FOLDER:
      return IsSegmentation(task);
    default:
      return true;
  }
}

bool IsBceLoss(v1::LossKind kind) {
  return kind == v1::LOSS_KIND_BCE || kind == v1::LOSS_KIND_BCE_DICE;
}
bool IsCrossEntropyLoss(v1::LossKind kind) {
  return kind == v1::LOSS_KIND_CROSS_ENTROPY || kind == v1::LOSS_KIND_CROSS_ENTROPY_DICE;
}
bool IsDiceLoss(v1::LossKind kind) {
  return kind == v1::LOSS_KIND_DICE || kind == v1::LOSS_KIND_BCE_DICE ||
         kind == v1::LOSS_KIND_CROSS_ENTROPY_DICE;
}

// Product of the classifier's strides: the input size must be a multiple for an encoder U-Net.
// Strides other than 1 and 2 are reported by ValidateClassifier and count as 1 here, so the
// product stays small (at most 2^5) whatever the spec holds.
int64_t TotalStride(const v1::ClassifierSpec& spec) {
  const auto valid = [](int64_t s) { return s == 2 ? int64_t{2} : int64_t{1}; };
  int64_t stride = valid(spec.stem_stride());
  for (int64_t s : spec.stage_strides()) stride *= valid(s);
  return stride;
}

void ValidateClassifier(const v1::ClassifierSpec& c, const std::string& path, bool as_encoder,
                        Errors& errors) {
  errors.IntInRange(path + ".in_channels", c.in_channels(), 1, kMaxInChannels);
  if (!as_encoder) errors.IntInRange(path + ".num_classes", c.num_classes(), 2, kMaxClasses);
  errors.IntInRange(path + ".stem_width", c.stem_width(), 1, kMaxWidth);
  if (c.stem_stride() != 1 && c.stem_stride() != 2) {
    errors.Add(path + ".stem_stride", absl::StrCat(c.stem_stride(), " must be 1 or 2"));
  }
  // The networks have four stages (models/classifier.h), each stride 1 or 2.
  constexpr int kStages = 4;
  using Stage = std::pair<const char*, const pb::RepeatedField<int64_t>*>;
  for (const Stage& stage :
       {Stage{"stage_widths", &c.stage_widths()}, Stage{"stage_blocks", &c.stage_blocks()},
        Stage{"stage_strides", &c.stage_strides()}}) {
    const std::string field = absl::StrCat(path, ".", stage.first);
    const pb::RepeatedField<int64_t>& values = *stage.second;
    if (values.size() != kStages) {
      errors.Add(field,
                 absl::StrCat(values.size(), " entries, must have ", kStages, " (one per stage)"));
    }
    for (int i = 0; i < values.size(); ++i) {
      const std::string element = absl::StrCat(field, "[", i, "]");
      if (absl::string_view(stage.first) == "stage_widths") {
        errors.IntInRange(element, values.Get(i), 1, kMaxWidth);
      } else if (absl::string_view(stage.first) == "stage_blocks") {
        errors.IntInRange(element, values.Get(i), 1, kMaxStageBlocks);
      } else if (values.Get(i) != 1 && values.Get(i) != 2) {
        errors.Add(element, absl::StrCat(values.Get(i), " must be 1 or 2"));
      }
    }
  }
  errors.InRange(path + ".dropout", c.dropout(), 0, 1, false, true);
}

// Output channels of a segmentation model: 1 for binary, the class count for multi-class.
void ValidateOutChannels(const std::string& path, int64_t out_channels, v1::Task task,
                         int64_t classes, Errors& errors) {
  if (task == v1::TASK_BINARY_SEGMENTATION && out_channels != 1) {
    errors.Add(path, absl::StrCat(out_channels,
                                  " must be 1 for binary_segmentation (one logit, sigmoid)"));
  } else if (task == v1::TASK_MULTICLASS_SEGMENTATION) {
    if (out_channels < 2) {
      errors.Add(path, absl::StrCat(out_channels, " must be >= 2 for multiclass_segmentation"));
    } else if (out_channels > kMaxClasses) {
      errors.Add(path, absl::StrCat(out_channels, " must be <= ", kMaxClasses));
    } else if (classes > 0 && out_channels != classes) {
      errors.Add(path,
                 absl::StrCat(out_channels, " does not match the data's ", classes, " classes"));
    }
  }
}

// Metrics the Trainer reports per task (metrics.h) that can be monitored.
bool IsKnownMonitor(const std::string& monitor, v1::Task task) {
  if (monitor == "val_loss" || monitor == "train_loss") return true;
  static const std::set<std::string> kClassification = {"top1", "top5", "macro_f1"};
  static const std::set<std::string> kBinary = {"dice", "iou", "pixel_accuracy"};
  static const std::set<std::string> kMultiClass = {"mean_dice", "mean_iou", "pixel_accuracy"};
  const auto per_class = [&](std::initializer_list<const char*> prefixes) {
    for (const char* prefix : prefixes) {
      if (absl::StartsWith(monitor, prefix) && monitor.size() > std::string(prefix).size()) {
        return true;
      }
    }
    return false;
  };
  switch (task) {
    case v1::TASK_CLASSIFICATION:
      return kClassification.count(monitor) > 0 || per_class({"precision/", "recall/", "f1/"});
    case v1::TASK_BINARY_SEGMENTATION:
      return kBinary.count(monitor) > 0;
    case v1::TASK_MULTICLASS_SEGMENTATION:
      return kMultiClass.count(monitor) > 0 || per_class({"dice/", "iou/"});
    default:
      return true;
  }
}

std::string MonitorChoices(v1::Task task) {
  switch (task) {
    case v1::TASK_CLASSIFICATION:
      return "val_loss, train_loss, top1, top5, macro_f1, precision/<class>, recall/<class>, "
             "f1/<class>";
    case v1::TASK_BINARY_SEGMENTATION:
      return "val_loss, train_loss, dice, iou, pixel_accuracy";
    case v1::TASK_MULTICLASS_SEGMENTATION:
      return "val_loss, train_loss, mean_dice, mean_iou, pixel_accuracy, dice/<class>, "
             "iou/<class>";
    default:
      return "val_loss";
  }
}

bool IsValidDevice(const std::string& device) {
  if (device == "cpu" || device == "cuda" || device == kAnyDevice) return true;
  absl::string_view rest = device;
  if (!absl::ConsumePrefix(&rest, "cuda:") || rest.empty()) return false;
  for (char c : rest) {
    if (!absl::ascii_isdigit(c)) return false;
  }
  return true;
}

void ValidateModel(const v1::JobSpec& spec, int64_t classes, Errors& errors) {
  const v1::ModelSpec& model = spec.model();
  const v1::Task task = spec.task();
  const int64_t image_size = spec.data().image_size();
  errors.AtLeast("model.parameter_budget", model.parameter_budget(), 0);
  if (model.fit_width_to_budget() && model.parameter_budget() <= 0) {
    errors.Add("model.fit_width_to_budget", "needs model.parameter_budget > 0");
  }
  switch (model.family_case()) {
    case v1::ModelSpec::FAMILY_NOT_SET:
      errors.Add("model", "no family set (classifier, unet or encoder_unet)");
      break;
    case v1::ModelSpec::kClassifier: {
      const v1::ClassifierSpec& c = model.classifier();
      if (task != v1::TASK_UNSPECIFIED && task != v1::TASK_CLASSIFICATION) {
        errors.Add("model.classifier",
                   absl::StrCat("a classifier needs task classification, not ", TaskName(task)));
      }
      ValidateClassifier(c, "model.classifier", /*as_encoder=*/false, errors);
      if (classes > 0 && c.num_classes() != classes) {
        errors.Add(
            "model.classifier.num_classes",
            absl::StrCat(c.num_classes(), " does not match the data's ", classes, " classes"));
      }
      if (image_size > 0 && image_size < TotalStride(c)) {
        errors.Add("data.image_size", absl::StrCat(image_size,
                                                   " is smaller than the classifier's total "
                                                   "stride ",
                                                   TotalStride(c)));
      }
      break;
    }
    case v1::ModelSpec::kUnet: {
      const v1::UNetSpec& u = model.unet();
      if (task == v1::TASK_CLASSIFICATION) {
        errors.Add("model.unet", "a U-Net needs a segmentation task, not classification");
      }
      errors.IntInRange("model.unet.in_channels", u.in_channels(), 1, kMaxInChannels);
      ValidateOutChannels("model.unet.out_channels", u.out_channels(), task, classes, errors);
      errors.IntInRange("model.unet.base_width", u.base_width(), 1, kMaxWidth);
      if (u.max_width() > kMaxWidth) {
        errors.IntInRange("model.unet.max_width", u.max_width(), 0, kMaxWidth);
      } else if (u.max_width() != 0 && !(u.max_width() >= u.base_width())) {
        errors.Add(
            "model.unet.max_width",
            absl::StrCat(u.max_width(), " must be 0 (no cap) or >= base_width ", u.base_width()));
      }
      errors.InRange("model.unet.dropout", u.dropout(), 0, 1, false, true);
      if (image_size > 0 && image_size % 16 != 0) {
        errors.Add("data.image_size", absl::StrCat(image_size, " must be divisible by 16 for a ",
                                                   "U-Net (4 downsamplings)"));
      }
      break;
    }
    case v1::ModelSpec::kEncoderUnet: {
      const v1::EncoderUNetSpec& e = model.encoder_unet();
      const std::string path = "model.encoder_unet";
      if (task == v1::TASK_CLASSIFICATION) {
        errors.Add(path, "an encoder U-Net needs a segmentation task, not classification");
      }
      ValidateClassifier(e.encoder(), path + ".encoder", /*as_encoder=*/true, errors);
      ValidateOutChannels(path + ".out_channels", e.out_channels(), task, classes, errors);
      errors.IntInRange(path + ".decoder_base_width", e.decoder_base_width(), 1, kMaxWidth);
      if (e.decoder_max_width() > kMaxWidth) {
        errors.IntInRange(path + ".decoder_max_width", e.decoder_max_width(), 0, kMaxWidth);
      } else if (e.decoder_max_width() != 0 && !(e.decoder_max_width() >= e.decoder_base_width())) {
        errors.Add(path + ".decoder_max_width",
                   absl::StrCat(e.decoder_max_width(), " must be 0 (no cap) or >= ",
                                "decoder_base_width ", e.decoder_base_width()));
      }
      const int64_t stride = TotalStride(e.encoder());
      if (image_size > 0 && image_size % stride != 0) {
        errors.Add("data.image_size",
                   absl::StrCat(image_size, " must be divisible by ", stride,
                                " (the encoder's total stride) for an encoder U-Net"));
      }
      const bool loads = e.encoder_mode() == v1::ENCODER_MODE_FROZEN ||
                         e.encoder_mode() == v1::ENCODER_MODE_FINE_TUNE;
      const bool has_checkpoint = !e.encoder_checkpoint().empty();
      const bool has_job = !e.encoder_job_id().empty();
      if (has_checkpoint && has_job) {
        errors.Add(path + ".encoder_job_id", "set encoder_checkpoint or encoder_job_id, not both");
      }
      if (loads && !has_checkpoint && !has_job) {
        errors.Add(path + ".encoder_checkpoint",
                   absl::StrCat("required for encoder_mode ", ModeName(e.encoder_mode()),
                                " (or encoder_job_id)"));
      }
      if (!loads && (has_checkpoint || has_job)) {
        errors.Add(path + (has_checkpoint ? ".encoder_checkpoint" : ".encoder_job_id"),
                   "encoder_mode scratch trains the encoder from random initialisation; use "
                   "frozen or fine_tune to start from a classifier");
      }
      const bool fine_tune = e.encoder_mode() == v1::ENCODER_MODE_FINE_TUNE;
      if (e.has_unfreeze_epoch()) {
        if (!fine_tune) {
          errors.Add(path + ".unfreeze_epoch", "only for encoder_mode fine_tune");
        } else if (!(e.unfreeze_epoch() >= 0 && e.unfreeze_epoch() < spec.training().epochs())) {
          errors.Add(path + ".unfreeze_epoch",
                     absl::StrCat(e.unfreeze_epoch(), " must be in [0, training.epochs ",
                                  spec.training().epochs(), ")"));
        }
      }
      if (e.has_encoder_lr_scale()) {
        if (!fine_tune) {
          errors.Add(path + ".encoder_lr_scale", "only for encoder_mode fine_tune");
        } else {
          errors.Positive(path + ".encoder_lr_scale", e.encoder_lr_scale());
        }
      }
      break;
    }
  }
}

int64_t ModelInChannels(const v1::ModelSpec& model) {
  switch (model.family_case()) {
    case v1::ModelSpec::kClassifier:
      return model.classifier().in_channels();
    case v1::ModelSpec::kUnet:
      return model.unet().in_channels();
    case v1::ModelSpec::kEncoderUnet:
      return model.encoder_unet().encoder().in_channels();
    default:
      return 0;
  }
}

void ValidateData(const v1::JobSpec& spec, int64_t classes, Errors& errors) {
  const v1::DataSpec& d = spec.data();
  const v1::Task task = spec.task();
  if (d.kind() == v1::DATA_KIND_UNSPECIFIED) {
    errors.Add("data.kind", absl::StrCat("not set (", EnumChoices(v1::DataKind_descriptor()), ")"));
    return;
  }
  const std::string kind = KindName(d.kind());
  const bool synthetic = IsSynthetic(d.kind());
  if (task != v1::TASK_UNSPECIFIED && !KindFitsTask(d.kind(), task)) {
    errors.Add("data.kind", absl::StrCat(kind, " data does not fit task ", TaskName(task)));
  }
  // Path.
  if (synthetic && !d.path().empty()) {
    errors.Add("data.path", absl::StrCat("synthetic data takes no path (kind ", kind, ")"));
  } else if (!synthetic) {
    if (d.path().empty()) {
      errors.Add("data.path", absl::StrCat("required for ", kind));
    } else if (absl::StartsWith(d.path(), "/")) {
      errors.Add("data.path",
                 absl::StrCat("\"", ForMessage(d.path()), "\" must be relative to the data root"));
    } else {
      for (absl::string_view part : absl::StrSplit(d.path(), '/')) {
        if (part == "..") {
          errors.Add("data.path", absl::StrCat("\"", ForMessage(d.path()),
                                               "\" must stay inside the data root (no '..')"));
          break;
        }
      }
    }
  }
  // Classes.
  const bool named = d.class_ids_size() > 0;
  if (named && d.has_num_classes()) {
    errors.Add("data.class_ids", "set data.num_classes or data.class_ids, not both");
  }
  if (named && d.kind() != v1::DATA_KIND_TINY_IMAGENET &&
      d.kind() != v1::DATA_KIND_SEGMENTATION_FOLDER) {
    errors.Add("data.class_ids", absl::StrCat("only for tiny_imagenet and segmentation_folder, "
                                              "not ",
                                              kind));
  }
  if (d.class_ids_size() > kMaxClasses) {
    errors.Add("data.class_ids", absl::StrCat(d.class_ids_size(), " names, at most ", kMaxClasses));
  }
  std::set<std::string> seen;
  for (const std::string& id : d.class_ids()) {
    if (id.empty()) {
      errors.Add("data.class_ids", "contains an empty name");
    } else if (!seen.insert(id).second) {
      errors.Add("data.class_ids", absl::StrCat("\"", ForMessage(id), "\" appears twice"));
    }
  }
  if (d.has_num_classes()) {
    const int64_t n = d.num_classes();
    if (task == v1::TASK_BINARY_SEGMENTATION && n != 1) {
      errors.Add("data.num_classes", absl::StrCat(n, " must be 1 for binary_segmentation"));
    } else if (d.kind() == v1::DATA_KIND_SYNTHETIC_SHAPES) {
      errors.InRange("data.num_classes", n, 2, 12, false, false);
    } else if (d.kind() == v1::DATA_KIND_SYNTHETIC_SHAPES_SEGMENTATION) {
      errors.InRange("data.num_classes", n, 1, 12, false, false);
    } else if (d.kind() == v1::DATA_KIND_TINY_IMAGENET) {
      errors.InRange("data.num_classes", n, 2, 200, false, false);
    } else if (task != v1::TASK_BINARY_SEGMENTATION) {
      errors.IntInRange("data.num_classes", n, 2, kMaxClasses);
    }
  } else if (!named && task == v1::TASK_MULTICLASS_SEGMENTATION && classes == 0) {
    errors.Add("data.num_classes", absl::StrCat("required for multiclass_segmentation on ", kind,
                                                " (or data.class_ids)"));
  }
  if (named && task == v1::TASK_CLASSIFICATION && d.class_ids_size() < 2) {
    errors.Add("data.class_ids", "classification needs at least 2 classes");
  }
  // Sizes and split.
  if (d.has_num_samples() && !synthetic) {
    errors.Add("data.num_samples", absl::StrCat("only for synthetic data, not ", kind));
  }
  errors.IntInRange("data.image_size", d.image_size(), kMinImageSize, kMaxImageSize);
  if (d.has_validation_fraction()) {
    errors.InRange("data.validation_fraction", d.validation_fraction(), 0, 1, true, true);
  }
  if (synthetic) {
    const int64_t n = d.num_samples();
    const double fraction = d.validation_fraction();
    if (n < 2 || n > kMaxNumSamples) {
      errors.IntInRange("data.num_samples", n, 2, kMaxNumSamples);
    } else if (fraction > 0 && fraction < 1 &&
               (std::floor(n * fraction) < 1 || n - std::ceil(n * fraction) < 1)) {
      errors.Add("data.num_samples", absl::StrCat(n, " with validation_fraction ", fraction,
                                                  " leaves an empty training or validation set"));
    }
  }
  // Augmentation.
  const v1::AugmentationSpec& a = d.augmentation();
  const std::string aug = "data.augmentation";
  errors.InRange(aug + ".rotation_degrees", a.rotation_degrees(), 0, 180, false, false);
  if (a.has_crop_scale_min() != a.has_crop_scale_max()) {
    errors.Add(aug + (a.has_crop_scale_min() ? ".crop_scale_max" : ".crop_scale_min"),
               "set crop_scale_min and crop_scale_max together");
  } else if (a.has_crop_scale_min()) {
    errors.InRange(aug + ".crop_scale_min", a.crop_scale_min(), 0, 1, true, false);
    errors.InRange(aug + ".crop_scale_max", a.crop_scale_max(), 0, 1, true, false);
    if (a.crop_scale_min() > a.crop_scale_max()) {
      errors.Add(
          aug + ".crop_scale_min",
          absl::StrCat(a.crop_scale_min(), " must be <= crop_scale_max ", a.crop_scale_max()));
    }
  }
  errors.InRange(aug + ".brightness", a.brightness(), 0, 1, false, false);
  errors.InRange(aug + ".contrast", a.contrast(), 0, 1, false, false);
  errors.InRange(aug + ".saturation", a.saturation(), 0, 1, false, false);
  // Normalisation.
  const int64_t in_channels = ModelInChannels(spec.model());
  for (const auto& [name, values] : {std::pair<std::string, const pb::RepeatedField<double>*>{
                                         "normalize_mean", &d.normalize_mean()},
                                     std::pair<std::string, const pb::RepeatedField<double>*>{
                                         "normalize_std", &d.normalize_std()}}) {
    if (values->empty()) continue;
    if (in_channels > 0 && values->size() != in_channels) {
      errors.Add("data." + name,
                 absl::StrCat(values->size(), " values for ", in_channels, " input channels"));
    }
    for (int i = 0; i < values->size(); ++i) {
      const std::string path = absl::StrCat("data.", name, "[", i, "]");
      if (name == "normalize_std") {
        errors.Positive(path, values->Get(i));
      } else {
        errors.InRange(path, values->Get(i), 0, 1, false, false);
      }
    }
  }
}

void ValidateTraining(const v1::JobSpec& spec, int64_t classes, Errors& errors) {
  const v1::TrainingSpec& t = spec.training();
  const v1::Task task = spec.task();
  errors.IntInRange("training.epochs", t.epochs(), 1, kMaxEpochs);
  errors.IntInRange("training.batch_size", t.batch_size(), 1, kMaxBatchSize);

  // Optimizer.
  const v1::OptimizerSpec& o = t.optimizer();
  const bool sgd = o.kind() == v1::OPTIMIZER_KIND_SGD;
  errors.Positive("training.optimizer.lr", o.lr());
  errors.AtLeast("training.optimizer.weight_decay", o.weight_decay(), 0);
  if (o.has_momentum()) {
    if (!sgd) {
      errors.Add("training.optimizer.momentum", "only for sgd");
    } else {
      errors.InRange("training.optimizer.momentum", o.momentum(), 0, 1, false, true);
    }
  }
  if (o.nesterov() && !(sgd && o.momentum() > 0)) {
    errors.Add("training.optimizer.nesterov", "needs kind sgd with momentum > 0");
  }
  for (const auto& [name, has, value] : {std::make_tuple("beta1", o.has_beta1(), o.beta1()),
                                         std::make_tuple("beta2", o.has_beta2(), o.beta2())}) {
    if (!has) continue;
    const std::string path = absl::StrCat("training.optimizer.", name);
    if (sgd) {
      errors.Add(path, "only for adam and adamw");
    } else {
      errors.InRange(path, value, 0, 1, false, true);
    }
  }

  // Schedule.
  const v1::ScheduleSpec& s = t.schedule();
  const std::string sched = "training.schedule";
  if (s.warmup_epochs() != 0 && !(s.warmup_epochs() > 0 && s.warmup_epochs() < t.epochs())) {
    errors.Add(
        sched + ".warmup_epochs",
        absl::StrCat(s.warmup_epochs(), " must be in [0, training.epochs ", t.epochs(), ")"));
  }
  errors.InRange(sched + ".warmup_start_factor", s.warmup_start_factor(), 0, 1, true, false);
  const bool step = s.kind() == v1::SCHEDULE_KIND_STEP;
  const bool cosine = s.kind() == v1::SCHEDULE_KIND_COSINE;
  const bool plateau = s.kind() == v1::SCHEDULE_KIND_REDUCE_ON_PLATEAU;
  if (s.has_step_size()) {
    if (!step)
      errors.Add(sched + ".step_size", "only for kind step");
    else
      errors.AtLeast(sched + ".step_size", s.step_size(), 1);
  }
  if (s.has_gamma()) {
    if (!step && !plateau)
      errors.Add(sched + ".gamma", "only for kinds step and reduce_on_plateau");
    else
      errors.InRange(sched + ".gamma", s.gamma(), 0, 1, true, true);
  }
  if (s.has_min_factor()) {
    if (!cosine && !plateau) {
      errors.Add(sched + ".min_factor", "only for kinds cosine and reduce_on_plateau");
    } else {
      errors.InRange(sched + ".min_factor", s.min_factor(), 0, 1, false, true);
    }
  }
  if (s.has_plateau_patience()) {
    if (!plateau)
      errors.Add(sched + ".plateau_patience", "only for kind reduce_on_plateau");
    else
      errors.AtLeast(sched + ".plateau_patience", s.plateau_patience(), 0);
  }
  if (s.has_plateau_threshold()) {
    if (!plateau)
      errors.Add(sched + ".plateau_threshold", "only for kind reduce_on_plateau");
    else
      errors.AtLeast(sched + ".plateau_threshold", s.plateau_threshold(), 0);
  }

  // Loss.
  const v1::LossSpec& l = t.loss();
  const std::string loss = "training.loss";
  const v1::LossKind kind = l.kind();
  if (task != v1::TASK_UNSPECIFIED) {
    const char* needs = nullptr;
    if (IsBceLoss(kind) && task != v1::TASK_BINARY_SEGMENTATION) {
      needs = "binary_segmentation";
    } else if (kind == v1::LOSS_KIND_CROSS_ENTROPY_DICE &&
               task != v1::TASK_MULTICLASS_SEGMENTATION) {
      needs = "multiclass_segmentation";
    } else if (kind == v1::LOSS_KIND_DICE && !IsSegmentation(task)) {
      needs = "a segmentation task";
    } else if (kind == v1::LOSS_KIND_CROSS_ENTROPY && task == v1::TASK_BINARY_SEGMENTATION) {
      needs = "classification or multiclass_segmentation (binary: bce, dice or bce_dice)";
    }
    if (needs != nullptr) {
      errors.Add(loss + ".kind",
                 absl::StrCat(LossName(kind), " needs ", needs, ", not task ", TaskName(task)));
    }
  }
  if (l.has_pos_weight()) {
    if (!IsBceLoss(kind))
      errors.Add(loss + ".pos_weight", "only for bce and bce_dice");
    else
      errors.Positive(loss + ".pos_weight", l.pos_weight());
  }
  if (l.has_bce_weight()) {
    if (kind != v1::LOSS_KIND_BCE_DICE)
      errors.Add(loss + ".bce_weight", "only for bce_dice");
    else
      errors.AtLeast(loss + ".bce_weight", l.bce_weight(), 0);
  }
  if (l.has_ce_weight()) {
    if (kind != v1::LOSS_KIND_CROSS_ENTROPY_DICE) {
      errors.Add(loss + ".ce_weight", "only for cross_entropy_dice");
    } else {
      errors.AtLeast(loss + ".ce_weight", l.ce_weight(), 0);
    }
  }
  if (l.has_dice_weight()) {
    if (kind != v1::LOSS_KIND_BCE_DICE && kind != v1::LOSS_KIND_CROSS_ENTROPY_DICE) {
      errors.Add(loss + ".dice_weight", "only for bce_dice and cross_entropy_dice");
    } else {
      errors.AtLeast(loss + ".dice_weight", l.dice_weight(), 0);
    }
  }
  if (kind == v1::LOSS_KIND_BCE_DICE && l.bce_weight() == 0 && l.dice_weight() == 0) {
    errors.Add(loss, "bce_weight and dice_weight are both 0");
  }
  if (kind == v1::LOSS_KIND_CROSS_ENTROPY_DICE && l.ce_weight() == 0 && l.dice_weight() == 0) {
    errors.Add(loss, "ce_weight and dice_weight are both 0");
  }
  if (l.class_weights_size() > 0) {
    if (!IsCrossEntropyLoss(kind)) {
      errors.Add(loss + ".class_weights", "only for cross_entropy and cross_entropy_dice");
    } else if (classes > 0 && l.class_weights_size() != classes) {
      errors.Add(loss + ".class_weights",
                 absl::StrCat(l.class_weights_size(), " weights for ", classes, " classes"));
    }
    for (int i = 0; i < l.class_weights_size(); ++i) {
      errors.AtLeast(absl::StrCat(loss, ".class_weights[", i, "]"), l.class_weights(i), 0);
    }
  }
  if (l.has_label_smoothing()) {
    if (!IsCrossEntropyLoss(kind)) {
      errors.Add(loss + ".label_smoothing", "only for cross_entropy and cross_entropy_dice");
    } else {
      errors.InRange(loss + ".label_smoothing", l.label_smoothing(), 0, 1, false, true);
    }
  }
  if (l.has_ignore_index()) {
    const bool multiclass_dice =
        kind == v1::LOSS_KIND_DICE && task == v1::TASK_MULTICLASS_SEGMENTATION;
    if (!IsCrossEntropyLoss(kind) && !multiclass_dice) {
      errors.Add(loss + ".ignore_index", "only for cross-entropy losses and multi-class dice");
    } else if (classes > 0 && l.ignore_index() >= classes) {
      errors.Add(loss + ".ignore_index",
                 absl::StrCat(l.ignore_index(), " must be < the class count ", classes,
                              " (or negative for none)"));
    }
  }
  if (l.has_dice_smooth()) {
    if (!IsDiceLoss(kind))
      errors.Add(loss + ".dice_smooth", "only for dice losses");
    else
      errors.AtLeast(loss + ".dice_smooth", l.dice_smooth(), 0);
  }

  // The rest.
  errors.AtLeast("training.grad_clip_norm", t.grad_clip_norm(), 0);
  if (task != v1::TASK_UNSPECIFIED && !IsKnownMonitor(t.monitor(), task)) {
    errors.Add("training.monitor",
               absl::StrCat("\"", ForMessage(t.monitor()), "\" is not a metric of ", TaskName(task),
                            " (", MonitorChoices(task), ")"));
  } else if (t.monitor() == "top5" && classes > 0 && classes < 5) {
    errors.Add("training.monitor",
               absl::StrCat("top5 needs at least 5 classes, the data has ", classes));
  }
  const v1::EarlyStoppingSpec& es = t.early_stopping();
  if (!es.enabled() && (es.has_patience() || es.has_min_delta())) {
    errors.Add(es.has_patience() ? "training.early_stopping.patience"
                                 : "training.early_stopping.min_delta",
               "set training.early_stopping.enabled to use it");
  } else if (es.enabled()) {
    errors.AtLeast("training.early_stopping.patience", es.patience(), 1);
    errors.AtLeast("training.early_stopping.min_delta", es.min_delta(), 0);
  }
  if (!IsValidDevice(t.device())) {
    errors.Add("training.device",
               absl::StrCat("\"", ForMessage(t.device()), "\" must be auto, cpu, cuda or cuda:N"));
  }
  errors.InRange("training.threads", t.threads(), 0, 1024, false, false);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Loading and printing.

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

// ---------------------------------------------------------------------------------------------
// Overrides.

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

// ---------------------------------------------------------------------------------------------
// Defaults.

namespace {

void ResolveClassifier(v1::ClassifierSpec* c, int64_t classes, bool as_encoder) {
  if (!c->has_in_channels()) c->set_in_channels(3);
  if (!as_encoder && !c->has_num_classes() && classes > 0) c->set_num_classes(classes);
  if (!c->has_stem_width()) c->set_stem_width(32);
  if (!c->has_stem_stride()) c->set_stem_stride(2);
  if (c->block() == v1::BLOCK_TYPE_UNSPECIFIED) c->set_block(v1::BLOCK_TYPE_BASIC);
  const models::ClassifierOptions defaults;
  if (c->stage_widths_size() == 0) {
    for (int64_t w : defaults.stage_widths) c->add_stage_widths(w);
  }
  if (c->stage_blocks_size() == 0) {
    for (int64_t b : defaults.stage_blocks) c->add_stage_blocks(b);
  }
  if (c->stage_strides_size() == 0) {
    for (int64_t s : defaults.stage_strides) c->add_stage_strides(s);
  }
  if (!c->has_dropout()) c->set_dropout(0.0);
}

int64_t DefaultOutChannels(v1::Task task, int64_t classes) {
  if (task == v1::TASK_BINARY_SEGMENTATION) return 1;
  return classes;  // 0 when unknown: validation reports it
}

}  // namespace

int64_t ExpectedNumClasses(const v1::JobSpec& spec) {
  const v1::DataSpec& d = spec.data();
  if (spec.task() == v1::TASK_BINARY_SEGMENTATION) return 1;
  if (d.class_ids_size() > 0) return d.class_ids_size();
  int64_t count = d.num_classes();
  if (!d.has_num_classes()) {
    switch (d.kind()) {
      case v1::DATA_KIND_SYNTHETIC_SHAPES:
      case v1::DATA_KIND_SYNTHETIC_SHAPES_SEGMENTATION:
        count = 6;
        break;
      case v1::DATA_KIND_TINY_IMAGENET:
        count = 200;
        break;
      default:
        return 0;
    }
  }
  // The shapes segmentation labels background as class 0 on top of the shapes.
  if (d.kind() == v1::DATA_KIND_SYNTHETIC_SHAPES_SEGMENTATION) return count + 1;
  return count;
}

v1::JobSpec ResolveDefaults(const v1::JobSpec& original) {
  v1::JobSpec spec = original;
  const v1::Task task = spec.task();

  // Data.
  v1::DataSpec* d = spec.mutable_data();
  const bool synthetic = IsSynthetic(d->kind());
  if (!d->has_image_size()) {
    const bool large =
        d->kind() == v1::DATA_KIND_MOON || d->kind() == v1::DATA_KIND_SEGMENTATION_FOLDER;
    d->set_image_size(large ? 256 : 64);
  }
  // Tiny ImageNet keeps "unset" to mean "its own val/ split".
  if (!d->has_validation_fraction() && d->kind() != v1::DATA_KIND_TINY_IMAGENET) {
    d->set_validation_fraction(0.2);
  }
  if (!d->has_split_seed()) d->set_split_seed(1);
  if (synthetic && !d->has_num_samples()) {
    d->set_num_samples(d->kind() == v1::DATA_KIND_SYNTHETIC_MOON ? 512 : 1000);
  }
  if (!d->has_num_classes() && d->class_ids_size() == 0) {
    if (task == v1::TASK_BINARY_SEGMENTATION) {
      d->set_num_classes(1);
    } else if (d->kind() == v1::DATA_KIND_SYNTHETIC_SHAPES ||
               d->kind() == v1::DATA_KIND_SYNTHETIC_SHAPES_SEGMENTATION) {
      d->set_num_classes(6);
    } else if (d->kind() == v1::DATA_KIND_TINY_IMAGENET) {
      d->set_num_classes(200);
    }
  }
  const int64_t classes = ExpectedNumClasses(spec);

  // Model.
  v1::ModelSpec* m = spec.mutable_model();
  switch (m->family_case()) {
    case v1::ModelSpec::kClassifier:
      ResolveClassifier(m->mutable_classifier(), classes, /*as_encoder=*/false);
      break;
    case v1::ModelSpec::kUnet: {
      v1::UNetSpec* u = m->mutable_unet();
      if (!u->has_in_channels()) u->set_in_channels(3);
      if (!u->has_out_channels() && DefaultOutChannels(task, classes) > 0) {
        u->set_out_channels(DefaultOutChannels(task, classes));
      }
      if (!u->has_base_width()) u->set_base_width(16);
      if (!u->has_max_width()) u->set_max_width(0);
      if (u->downsample() == v1::DOWNSAMPLE_UNSPECIFIED) u->set_downsample(v1::DOWNSAMPLE_MAX_POOL);
      if (u->upsample() == v1::UPSAMPLE_UNSPECIFIED) u->set_upsample(v1::UPSAMPLE_TRANSPOSED_CONV);
      if (!u->has_dropout()) u->set_dropout(0.0);
      break;
    }
    case v1::ModelSpec::kEncoderUnet: {
      v1::EncoderUNetSpec* e = m->mutable_encoder_unet();
      ResolveClassifier(e->mutable_encoder(), classes, /*as_encoder=*/true);
      if (!e->has_out_channels() && DefaultOutChannels(task, classes) > 0) {
        e->set_out_channels(DefaultOutChannels(task, classes));
      }
      if (!e->has_decoder_base_width()) e->set_decoder_base_width(16);
      if (!e->has_decoder_max_width()) e->set_decoder_max_width(0);
      if (e->upsample() == v1::UPSAMPLE_UNSPECIFIED) e->set_upsample(v1::UPSAMPLE_BILINEAR);
      if (e->encoder_mode() == v1::ENCODER_MODE_UNSPECIFIED) {
        e->set_encoder_mode(v1::ENCODER_MODE_SCRATCH);
      }
      if (e->encoder_mode() == v1::ENCODER_MODE_FINE_TUNE) {
        if (!e->has_unfreeze_epoch()) e->set_unfreeze_epoch(0);
        if (!e->has_encoder_lr_scale()) e->set_encoder_lr_scale(0.1);
      }
      break;
    }
    case v1::ModelSpec::FAMILY_NOT_SET:
      break;
  }

  // Training.
  v1::TrainingSpec* t = spec.mutable_training();
  if (!t->has_epochs()) t->set_epochs(10);
  if (!t->has_batch_size()) t->set_batch_size(32);
  v1::OptimizerSpec* o = t->mutable_optimizer();
  if (o->kind() == v1::OPTIMIZER_KIND_UNSPECIFIED) o->set_kind(v1::OPTIMIZER_KIND_ADAMW);
  const bool sgd = o->kind() == v1::OPTIMIZER_KIND_SGD;
  if (!o->has_lr()) o->set_lr(sgd ? 0.1 : 1e-3);
  if (!o->has_weight_decay()) {
    o->set_weight_decay(o->kind() == v1::OPTIMIZER_KIND_ADAMW ? 0.01 : 0.0);
  }
  if (sgd && !o->has_momentum()) o->set_momentum(0.9);
  if (!sgd && !o->has_beta1()) o->set_beta1(0.9);
  if (!sgd && !o->has_beta2()) o->set_beta2(0.999);

  v1::ScheduleSpec* s = t->mutable_schedule();
  if (s->kind() == v1::SCHEDULE_KIND_UNSPECIFIED) s->set_kind(v1::SCHEDULE_KIND_CONSTANT);
  if (!s->has_warmup_epochs()) s->set_warmup_epochs(0);
  if (!s->has_warmup_start_factor()) s->set_warmup_start_factor(0.1);
  switch (s->kind()) {
    case v1::SCHEDULE_KIND_STEP:
      if (!s->has_step_size()) s->set_step_size(10);
      if (!s->has_gamma()) s->set_gamma(0.1);
      break;
    case v1::SCHEDULE_KIND_COSINE:
      if (!s->has_min_factor()) s->set_min_factor(0.0);
      break;
    case v1::SCHEDULE_KIND_REDUCE_ON_PLATEAU:
      if (!s->has_gamma()) s->set_gamma(0.1);
      if (!s->has_min_factor()) s->set_min_factor(0.0);
      if (!s->has_plateau_patience()) s->set_plateau_patience(3);
      if (!s->has_plateau_threshold()) s->set_plateau_threshold(1e-4);
      break;
    default:
      break;
  }

  v1::LossSpec* l = t->mutable_loss();
  if (l->kind() == v1::LOSS_KIND_UNSPECIFIED && task != v1::TASK_UNSPECIFIED) {
    l->set_kind(task == v1::TASK_BINARY_SEGMENTATION ? v1::LOSS_KIND_BCE_DICE
                                                     : v1::LOSS_KIND_CROSS_ENTROPY);
  }
  const v1::LossKind kind = l->kind();
  if (IsBceLoss(kind) && !l->has_pos_weight()) l->set_pos_weight(1.0);
  if (kind == v1::LOSS_KIND_BCE_DICE && !l->has_bce_weight()) l->set_bce_weight(0.5);
  if (kind == v1::LOSS_KIND_CROSS_ENTROPY_DICE && !l->has_ce_weight()) l->set_ce_weight(0.5);
  if ((kind == v1::LOSS_KIND_BCE_DICE || kind == v1::LOSS_KIND_CROSS_ENTROPY_DICE) &&
      !l->has_dice_weight()) {
    l->set_dice_weight(0.5);
  }
  if (IsCrossEntropyLoss(kind) && !l->has_label_smoothing()) l->set_label_smoothing(0.0);
  const bool uses_ignore = IsCrossEntropyLoss(kind) ||
                           (kind == v1::LOSS_KIND_DICE && task == v1::TASK_MULTICLASS_SEGMENTATION);
  if (uses_ignore && !l->has_ignore_index()) l->set_ignore_index(-100);
  if (IsDiceLoss(kind) && !l->has_dice_smooth()) l->set_dice_smooth(1.0);

  if (!t->has_grad_clip_norm()) t->set_grad_clip_norm(0.0);
  if (t->monitor().empty()) {
    switch (task) {
      case v1::TASK_CLASSIFICATION:
        t->set_monitor("top1");
        break;
      case v1::TASK_BINARY_SEGMENTATION:
        t->set_monitor("dice");
        break;
      case v1::TASK_MULTICLASS_SEGMENTATION:
        t->set_monitor("mean_dice");
        break;
      default:
        t->set_monitor("val_loss");
        break;
    }
  }
  v1::EarlyStoppingSpec* es = t->mutable_early_stopping();
  if (es->enabled()) {
    if (!es->has_patience()) es->set_patience(5);
    if (!es->has_min_delta()) es->set_min_delta(0.0);
  }
  if (!t->has_seed()) t->set_seed(1);
  // "auto" leaves the choice to the server, which overrides the device anyway; a local run has
  // the CPU.
  if (t->device().empty() || t->device() == kAnyDevice) t->set_device("cpu");
  if (!t->has_threads()) t->set_threads(0);
  if (t->precision() == v1::PRECISION_UNSPECIFIED) t->set_precision(v1::PRECISION_FP32);
  if (!t->has_channels_last()) t->set_channels_last(true);
  return spec;
}

// ---------------------------------------------------------------------------------------------
// Validation.

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

// ---------------------------------------------------------------------------------------------
// Translation.

train::Task ToTask(v1::Task task) {
  switch (task) {
    case v1::TASK_BINARY_SEGMENTATION:
      return train::Task::kBinarySegmentation;
    case v1::TASK_MULTICLASS_SEGMENTATION:
      return train::Task::kMultiClassSegmentation;
    default:
      return train::Task::kClassification;
  }
}

std::string DataKindName(DataKind kind) {
  switch (kind) {
    case DataKind::kSyntheticMoon:
      return "synthetic_moon";
    case DataKind::kSyntheticShapes:
      return "synthetic_shapes";
    case DataKind::kSyntheticShapesSegmentation:
      return "synthetic_shapes_segmentation";
    case DataKind::kTinyImageNet:
      return "tiny_imagenet";
    case DataKind::kMoon:
      return "moon";
    case DataKind::kSegmentationFolder:
      return "segmentation_folder";
  }
  return "unknown";
}

bool DataRequest::synthetic() const {
  return kind == DataKind::kSyntheticMoon || kind == DataKind::kSyntheticShapes ||
         kind == DataKind::kSyntheticShapesSegmentation;
}

DataRequest ResolveDataRequest(const v1::JobSpec& original) {
  const v1::JobSpec spec = ResolveDefaults(original);
  const v1::DataSpec& d = spec.data();
  DataRequest request;
  request.task = ToTask(spec.task());
  switch (d.kind()) {
    case v1::DATA_KIND_SYNTHETIC_SHAPES:
      request.kind = DataKind::kSyntheticShapes;
      break;
    case v1::DATA_KIND_SYNTHETIC_SHAPES_SEGMENTATION:
      request.kind = DataKind::kSyntheticShapesSegmentation;
      break;
    case v1::DATA_KIND_TINY_IMAGENET:
      request.kind = DataKind::kTinyImageNet;
      break;
    case v1::DATA_KIND_MOON:
      request.kind = DataKind::kMoon;
      break;
    case v1::DATA_KIND_SEGMENTATION_FOLDER:
      request.kind = DataKind::kSegmentationFolder;
      break;
    default:
      request.kind = DataKind::kSyntheticMoon;
      break;
  }
  request.path = d.path();
  request.num_classes = d.num_classes();
  request.class_ids.assign(d.class_ids().begin(), d.class_ids().end());
  request.num_samples = d.num_samples();
  request.image_size = d.image_size();
  request.validation_fraction_set = d.has_validation_fraction();
  request.validation_fraction = d.has_validation_fraction() ? d.validation_fraction() : 0.2;
  request.split_seed = d.split_seed();
  if (spec.training().loss().has_ignore_index()) {
    request.ignore_index = spec.training().loss().ignore_index();
  }
  const v1::AugmentationSpec& a = d.augmentation();
  request.augmentation.hflip = a.hflip();
  request.augmentation.vflip = a.vflip();
  request.augmentation.rotation_degrees = a.rotation_degrees();
  if (a.has_crop_scale_min()) request.augmentation.crop_scale_min = a.crop_scale_min();
  if (a.has_crop_scale_max()) request.augmentation.crop_scale_max = a.crop_scale_max();
  request.augmentation.brightness = a.brightness();
  request.augmentation.contrast = a.contrast();
  request.augmentation.saturation = a.saturation();
  request.normalize_mean.assign(d.normalize_mean().begin(), d.normalize_mean().end());
  request.normalize_std.assign(d.normalize_std().begin(), d.normalize_std().end());
  return request;
}

namespace {

models::ClassifierOptions ToClassifierOptions(const v1::ClassifierSpec& c, bool head) {
  models::ClassifierOptions options;
  options.in_channels = c.in_channels();
  if (c.has_num_classes()) options.num_classes = c.num_classes();
  options.stem_width = c.stem_width();
  options.stem_stride = c.stem_stride();
  options.block = c.block() == v1::BLOCK_TYPE_BOTTLENECK ? models::BlockType::kBottleneck
                                                         : models::BlockType::kBasic;
  options.stage_widths.assign(c.stage_widths().begin(), c.stage_widths().end());
  options.stage_blocks.assign(c.stage_blocks().begin(), c.stage_blocks().end());
  options.stage_strides.assign(c.stage_strides().begin(), c.stage_strides().end());
  options.dropout = c.dropout();
  options.head = head;
  return options;
}

models::Upsample ToUpsample(v1::Upsample upsample) {
  return upsample == v1::UPSAMPLE_BILINEAR ? models::Upsample::kBilinear
                                           : models::Upsample::kTransposedConv;
}

}  // namespace

models::NetworkSpec ResolveNetworkSpec(const v1::JobSpec& original) {
  const v1::JobSpec spec = ResolveDefaults(original);
  const v1::ModelSpec& m = spec.model();
  models::NetworkSpec network;
  network.parameter_budget = m.parameter_budget();
  network.fit_width_to_budget = m.fit_width_to_budget();
  switch (m.family_case()) {
    case v1::ModelSpec::kClassifier:
      network.family = models::Family::kClassifier;
      network.classifier = ToClassifierOptions(m.classifier(), /*head=*/true);
      break;
    case v1::ModelSpec::kUnet: {
      const v1::UNetSpec& u = m.unet();
      network.family = models::Family::kUNet;
      network.unet.in_channels = u.in_channels();
      network.unet.out_channels = u.out_channels();
      network.unet.base_width = u.base_width();
      network.unet.max_width = u.max_width();
      network.unet.downsample = u.downsample() == v1::DOWNSAMPLE_STRIDED_CONV
                                    ? models::Downsample::kStridedConv
                                    : models::Downsample::kMaxPool;
      network.unet.upsample = ToUpsample(u.upsample());
      network.unet.dropout = u.dropout();
      break;
    }
    case v1::ModelSpec::kEncoderUnet: {
      const v1::EncoderUNetSpec& e = m.encoder_unet();
      models::EncoderUNetOptions& options = network.encoder_unet;
      network.family = models::Family::kEncoderUNet;
      options.encoder = ToClassifierOptions(e.encoder(), /*head=*/false);
      options.out_channels = e.out_channels();
      options.decoder_base_width = e.decoder_base_width();
      options.decoder_max_width = e.decoder_max_width();
      options.upsample = ToUpsample(e.upsample());
      switch (e.encoder_mode()) {
        case v1::ENCODER_MODE_FROZEN:
          options.encoder_mode = models::EncoderMode::kFrozen;
          break;
        case v1::ENCODER_MODE_FINE_TUNE:
          options.encoder_mode = models::EncoderMode::kFineTune;
          break;
        default:
          options.encoder_mode = models::EncoderMode::kScratch;
          break;
      }
      if (e.has_unfreeze_epoch()) options.unfreeze_epoch = e.unfreeze_epoch();
      if (e.has_encoder_lr_scale()) options.encoder_lr_scale = e.encoder_lr_scale();
      options.encoder_checkpoint = e.encoder_checkpoint();
      break;
    }
    case v1::ModelSpec::FAMILY_NOT_SET:
      break;
  }
  return network;
}

}  // namespace selene::jobs
