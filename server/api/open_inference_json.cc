#include "server/api/open_inference_json.h"

#include <google/protobuf/arena.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <map>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/text_limits.h"
#include "server/http/http_response.h"
#include "server/serving/open_inference_tensors.h"

namespace selene::api {
namespace {

namespace pb = ::google::protobuf;
using InputTensor = inference::ModelInferRequest::InferInputTensor;
using OutputTensor = inference::ModelInferResponse::InferOutputTensor;
using ParameterMap = pb::Map<std::string, inference::InferParameter>;

// The wire format is little-endian; raw buffers are copied into numbers as they are.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "raw tensors are little-endian");

constexpr char kBase64[] = "base64";

// The parser's message without the context line and caret it adds below it.
std::string FirstLine(const pb::util::Status& status) {
  const absl::string_view text(status.message().data(), status.message().size());
  return std::string(absl::StripAsciiWhitespace(text.substr(0, text.find('\n'))));
}

// The shortest decimal text that reads back as `value` ("0.3", not "0.29999999999999999").
std::string NumberText(double value) {
  for (int precision = 15; precision < 17; ++precision) {
    std::string text = absl::StrFormat("%.*g", precision, value);
    if (std::strtod(text.c_str(), nullptr) == value) return text;
  }
  return absl::StrFormat("%.17g", value);
}

std::string Describe(const pb::Value& value) {
  switch (value.kind_case()) {
    case pb::Value::kNumberValue:
      return NumberText(value.number_value());
    case pb::Value::kBoolValue:
      return value.bool_value() ? "true" : "false";
    case pb::Value::kStringValue:
      return "a string";
    case pb::Value::kListValue:
      return "an array";
    case pb::Value::kStructValue:
      return "an object";
    default:
      return "null";
  }
}

bool IsInteger(double value) { return std::isfinite(value) && value == std::trunc(value); }

// 2^63 is exact as a double; every integer below it converts to int64 without overflow.
bool FitsInt64(double value) {
  return IsInteger(value) && value >= -9223372036854775808.0 && value < 9223372036854775808.0;
}

Status CheckKeys(const pb::Struct& object, std::initializer_list<const char*> allowed,
                 const std::string& where) {
  for (const auto& [key, value] : object.fields()) {
    if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return key == a; })) {
      return InvalidArgumentError(absl::StrCat(where, ": unknown key \"", ForMessage(key),
                                               "\"; expected ", absl::StrJoin(allowed, ", ")));
    }
  }
  return OkStatus();
}

const pb::Value* Find(const pb::Struct& object, const char* key) {
  const auto found = object.fields().find(key);
  return found == object.fields().end() ? nullptr : &found->second;
}

StatusOr<std::string> StringField(const pb::Struct& object, const char* key,
                                  const std::string& where) {
  const pb::Value* value = Find(object, key);
  if (value == nullptr) return InvalidArgumentError(absl::StrCat(where, ": \"", key, "\" missing"));
  if (value->kind_case() != pb::Value::kStringValue) {
    return InvalidArgumentError(
        absl::StrCat(where, ": \"", key, "\" must be a string, not ", Describe(*value)));
  }
  return value->string_value();
}

Status ParseParameters(const pb::Value& value, const std::string& where, ParameterMap* out) {
  if (value.kind_case() != pb::Value::kStructValue) {
    return InvalidArgumentError(
        absl::StrCat(where, ": \"parameters\" must be an object, not ", Describe(value)));
  }
  for (const auto& [key, parameter] : value.struct_value().fields()) {
    inference::InferParameter& p = (*out)[key];
    switch (parameter.kind_case()) {
      case pb::Value::kBoolValue:
        p.set_bool_param(parameter.bool_value());
        break;
      case pb::Value::kNumberValue:
        if (FitsInt64(parameter.number_value())) {
          p.set_int64_param(static_cast<int64_t>(parameter.number_value()));
        } else {
          p.set_string_param(NumberText(parameter.number_value()));
        }
        break;
      case pb::Value::kStringValue:
        p.set_string_param(parameter.string_value());
        break;
      default:
        return InvalidArgumentError(absl::StrCat(where, ": parameter \"", ForMessage(key),
                                                 "\" must be a bool, number or string, not ",
                                                 Describe(parameter)));
    }
  }
  return OkStatus();
}

// The elements of nested arrays in row-major order.
void Flatten(const pb::Value& value, std::vector<const pb::Value*>* elements) {
  if (value.kind_case() != pb::Value::kListValue) {
    elements->push_back(&value);
    return;
  }
  for (const pb::Value& element : value.list_value().values()) Flatten(element, elements);
}

// Fills one typed contents field from numbers that must be integers in [min, max].
template <typename T, typename Add>
Status AddIntegers(const std::vector<const pb::Value*>& elements, const std::string& where,
                   const std::string& datatype, double min, double max, Add add) {
  for (size_t i = 0; i < elements.size(); ++i) {
    const pb::Value& element = *elements[i];
    if (element.kind_case() != pb::Value::kNumberValue || !IsInteger(element.number_value())) {
      return InvalidArgumentError(absl::StrCat(where, ": data[", i, "] is ", Describe(element),
                                               ", not an integer (datatype ", datatype, ")"));
    }
    const double number = element.number_value();
    if (number < min || number > max) {
      return InvalidArgumentError(absl::StrCat(where, ": data[", i, "] is ", NumberText(number),
                                               ", outside ", datatype, "'s range ", NumberText(min),
                                               "..", NumberText(max)));
    }
    add(static_cast<T>(number));
  }
  return OkStatus();
}

Status FillContents(const std::vector<const pb::Value*>& elements, const std::string& where,
                    bool base64, InputTensor* tensor) {
  const std::string& datatype = tensor->datatype();
  inference::InferTensorContents& contents = *tensor->mutable_contents();
  const auto not_a = [&](size_t i, const char* what) {
    return InvalidArgumentError(absl::StrCat(where, ": data[", i, "] is ", Describe(*elements[i]),
                                             ", not ", what, " (datatype ", datatype, ")"));
  };
  if (datatype == "BOOL") {
    for (size_t i = 0; i < elements.size(); ++i) {
      if (elements[i]->kind_case() != pb::Value::kBoolValue) return not_a(i, "true or false");
      contents.add_bool_contents(elements[i]->bool_value());
    }
    return OkStatus();
  }
  if (datatype == "FP32" || datatype == "FP64") {
    for (size_t i = 0; i < elements.size(); ++i) {
      if (elements[i]->kind_case() != pb::Value::kNumberValue) return not_a(i, "a number");
      const double number = elements[i]->number_value();
      if (datatype == "FP32") {
        contents.add_fp32_contents(static_cast<float>(number));
      } else {
        contents.add_fp64_contents(number);
      }
    }
    return OkStatus();
  }
  if (datatype == "BYTES") {
    for (size_t i = 0; i < elements.size(); ++i) {
      if (elements[i]->kind_case() != pb::Value::kStringValue) return not_a(i, "a string");
      std::string* bytes = contents.add_bytes_contents();
      if (!base64) {
        *bytes = elements[i]->string_value();
      } else if (!absl::Base64Unescape(elements[i]->string_value(), bytes)) {
        return InvalidArgumentError(absl::StrCat(
            where, ": data[", i, "] is not base64 (the input's content_type is \"base64\")"));
      }
    }
    return OkStatus();
  }
  const auto uints = [&](double max) {
    return AddIntegers<uint32_t>(elements, where, datatype, 0, max,
                                 [&](uint32_t v) { contents.add_uint_contents(v); });
  };
  const auto ints = [&](double min, double max) {
    return AddIntegers<int32_t>(elements, where, datatype, min, max,
                                [&](int32_t v) { contents.add_int_contents(v); });
  };
  if (datatype == "UINT8") return uints(255);
  if (datatype == "UINT16") return uints(65535);
  if (datatype == "UINT32") return uints(4294967295.0);
  if (datatype == "INT8") return ints(-128, 127);
  if (datatype == "INT16") return ints(-32768, 32767);
  if (datatype == "INT32") return ints(-2147483648.0, 2147483647.0);
  if (datatype == "UINT64") {
    // The largest double below 2^64.
    return AddIntegers<uint64_t>(elements, where, datatype, 0, 18446744073709549568.0,
                                 [&](uint64_t v) { contents.add_uint64_contents(v); });
  }
  if (datatype == "INT64") {
    return AddIntegers<int64_t>(elements, where, datatype, -9223372036854775808.0,
                                9223372036854774784.0,
                                [&](int64_t v) { contents.add_int64_contents(v); });
  }
  if (datatype == "FP16" || datatype == "BF16") {
    return InvalidArgumentError(
        absl::StrCat(where, ": datatype ", datatype, " has no JSON form here; send FP32"));
  }
  return InvalidArgumentError(
      absl::StrCat(where, ": unknown datatype \"", ForMessage(datatype),
                   "\" (BOOL, UINT8..UINT64, INT8..INT64, FP32, FP64 or BYTES)"));
}

Status ParseInput(const pb::Value& value, size_t index, InputTensor* tensor) {
  std::string where = absl::StrCat("inputs[", index, "]");
  if (value.kind_case() != pb::Value::kStructValue) {
    return InvalidArgumentError(absl::StrCat(where, " must be an object, not ", Describe(value)));
  }
  const pb::Struct& object = value.struct_value();
  SELENE_ASSIGN_OR_RETURN(*tensor->mutable_name(), StringField(object, "name", where));
  where = absl::StrCat("input \"", ForMessage(tensor->name()), "\"");
  SELENE_RETURN_IF_ERROR(
      CheckKeys(object, {"name", "shape", "datatype", "parameters", "data"}, where));
  SELENE_ASSIGN_OR_RETURN(*tensor->mutable_datatype(), StringField(object, "datatype", where));

  const pb::Value* shape = Find(object, "shape");
  if (shape == nullptr || shape->kind_case() != pb::Value::kListValue) {
    return InvalidArgumentError(absl::StrCat(where, ": \"shape\" must be an array of integers"));
  }
  int64_t count = 1;
  for (const pb::Value& dimension : shape->list_value().values()) {
    if (dimension.kind_case() != pb::Value::kNumberValue || !FitsInt64(dimension.number_value()) ||
        dimension.number_value() < 0) {
      return InvalidArgumentError(absl::StrCat(where, ": \"shape\" holds ", Describe(dimension),
                                               "; dimensions are integers >= 0"));
    }
    const auto d = static_cast<int64_t>(dimension.number_value());
    tensor->add_shape(d);
    count = d != 0 && count > std::numeric_limits<int64_t>::max() / d ? -1 : count * d;
  }

  bool base64 = false;
  if (const pb::Value* parameters = Find(object, "parameters"); parameters != nullptr) {
    SELENE_RETURN_IF_ERROR(ParseParameters(*parameters, where, tensor->mutable_parameters()));
    if (tensor->parameters().count("binary_data_size") != 0) {
      return InvalidArgumentError(absl::StrCat(
          where,
          ": binary tensor data (Triton's binary_data_size) is not supported; send the "
          "elements as JSON \"data\""));
    }
    const auto content_type = tensor->parameters().find("content_type");
    base64 = content_type != tensor->parameters().end() &&
             content_type->second.string_param() == kBase64;
  }

  const pb::Value* data = Find(object, "data");
  if (data == nullptr) return InvalidArgumentError(absl::StrCat(where, ": \"data\" missing"));
  if (data->kind_case() != pb::Value::kListValue) {
    return InvalidArgumentError(
        absl::StrCat(where, ": \"data\" must be an array, not ", Describe(*data)));
  }
  std::vector<const pb::Value*> elements;
  Flatten(*data, &elements);
  if (count < 0 || static_cast<uint64_t>(count) != elements.size()) {
    return InvalidArgumentError(absl::StrCat(where, ": \"data\" holds ", elements.size(),
                                             " elements; shape [",
                                             absl::StrJoin(tensor->shape(), ", "), "] needs ",
                                             count < 0 ? "more than 2^63" : absl::StrCat(count)));
  }
  return FillContents(elements, where, base64, tensor);
}

Status ParseOutput(const pb::Value& value, size_t index,
                   inference::ModelInferRequest::InferRequestedOutputTensor* tensor) {
  std::string where = absl::StrCat("outputs[", index, "]");
  if (value.kind_case() != pb::Value::kStructValue) {
    return InvalidArgumentError(absl::StrCat(where, " must be an object, not ", Describe(value)));
  }
  const pb::Struct& object = value.struct_value();
  SELENE_ASSIGN_OR_RETURN(*tensor->mutable_name(), StringField(object, "name", where));
  where = absl::StrCat("output \"", ForMessage(tensor->name()), "\"");
  SELENE_RETURN_IF_ERROR(CheckKeys(object, {"name", "parameters"}, where));
  if (const pb::Value* parameters = Find(object, "parameters"); parameters != nullptr) {
    SELENE_RETURN_IF_ERROR(ParseParameters(*parameters, where, tensor->mutable_parameters()));
  }
  return OkStatus();
}

// ---- answers ----

void AppendParameter(const inference::InferParameter& p, std::string* out) {
  switch (p.parameter_choice_case()) {
    case inference::InferParameter::kBoolParam:
      out->append(p.bool_param() ? "true" : "false");
      break;
    case inference::InferParameter::kInt64Param:
      absl::StrAppend(out, p.int64_param());
      break;
    case inference::InferParameter::kStringParam:
      out->append(JsonString(p.string_param()));
      break;
    default:
      out->append("null");
  }
}

// Sorted by key, so answers are the same from one call to the next.
void AppendParameters(const ParameterMap& parameters, std::string* out) {
  const std::map<std::string, inference::InferParameter> sorted(parameters.begin(),
                                                                parameters.end());
  out->append("{");
  bool first = true;
  for (const auto& [key, value] : sorted) {
    absl::StrAppend(out, first ? "" : ",", JsonString(key), ":");
    AppendParameter(value, out);
    first = false;
  }
  out->append("}");
}

void AppendNumber(float value, std::string* out) {
  if (!std::isfinite(value)) {
    out->append("null");
  } else {
    absl::StrAppendFormat(out, "%.9g", value);
  }
}
void AppendNumber(double value, std::string* out) {
  if (!std::isfinite(value)) {
    out->append("null");
  } else {
    absl::StrAppendFormat(out, "%.17g", value);
  }
}
void AppendNumber(bool value, std::string* out) { out->append(value ? "true" : "false"); }
template <typename T>
void AppendNumber(T value, std::string* out) {
  absl::StrAppend(out, value);
}

template <typename T>
void AppendElements(const T& values, std::string* out) {
  bool first = true;
  for (const auto& value : values) {
    if (!first) out->push_back(',');
    AppendNumber(value, out);
    first = false;
  }
}

// `count` elements of type T from a raw little-endian buffer.
template <typename T>
Status AppendRaw(const std::string& raw, int64_t count, const std::string& where,
                 std::string* out) {
  if (raw.size() != static_cast<uint64_t>(count) * sizeof(T)) {
    return InternalError(absl::StrCat(where, ": raw output of ", raw.size(), " bytes for ", count,
                                      " elements of ", sizeof(T), " bytes"));
  }
  std::vector<T> values(static_cast<size_t>(count));
  if (count > 0) std::memcpy(values.data(), raw.data(), raw.size());
  AppendElements(values, out);
  return OkStatus();
}

// A raw BYTES output's `count` elements (open_inference_tensors.h's encoding); a buffer that
// does not hold them is the core's bug, so Internal.
StatusOr<std::vector<std::string>> RawBytesOutput(const std::string& raw, int64_t count,
                                                  const std::string& where) {
  StatusOr<std::vector<std::string>> elements = serving::SplitRawBytes(raw);
  if (!elements.ok() || static_cast<int64_t>(elements->size()) != count) {
    return InternalError(absl::StrCat(where, ": raw BYTES output does not hold ", count,
                                      " length-prefixed elements"));
  }
  return elements;
}

// The BYTES elements as JSON strings; all base64 (saying so) when one is not UTF-8 text.
void AppendStrings(const std::vector<std::string>& elements, std::string* data, bool* base64) {
  *base64 = std::any_of(elements.begin(), elements.end(),
                        [](const std::string& e) { return !IsValidUtf8(e); });
  bool first = true;
  for (const std::string& element : elements) {
    if (!first) data->push_back(',');
    data->append(JsonString(*base64 ? absl::Base64Escape(element) : element));
    first = false;
  }
}

// One output's "data" elements, from its raw buffer (`raw` not null) or typed contents.
Status AppendOutputData(const OutputTensor& tensor, const std::string* raw, int64_t count,
                        const std::string& where, std::string* data, bool* base64) {
  const std::string& type = tensor.datatype();
  const inference::InferTensorContents& contents = tensor.contents();
  if (type == "BYTES") {
    std::vector<std::string> elements;
    if (raw != nullptr) {
      SELENE_ASSIGN_OR_RETURN(elements, RawBytesOutput(*raw, count, where));
    } else {
      elements.assign(contents.bytes_contents().begin(), contents.bytes_contents().end());
    }
    AppendStrings(elements, data, base64);
    return OkStatus();
  }
  if (raw == nullptr) {
    if (type == "BOOL") AppendElements(contents.bool_contents(), data);
    if (type == "UINT8" || type == "UINT16" || type == "UINT32") {
      AppendElements(contents.uint_contents(), data);
    }
    if (type == "UINT64") AppendElements(contents.uint64_contents(), data);
    if (type == "INT8" || type == "INT16" || type == "INT32") {
      AppendElements(contents.int_contents(), data);
    }
    if (type == "INT64") AppendElements(contents.int64_contents(), data);
    if (type == "FP32") AppendElements(contents.fp32_contents(), data);
    if (type == "FP64") AppendElements(contents.fp64_contents(), data);
    return OkStatus();
  }
  if (type == "BOOL") {
    // One byte per element (std::vector<bool> has no bytes to copy into).
    if (raw->size() != static_cast<uint64_t>(count)) {
      return InternalError(absl::StrCat(where, ": raw BOOL output of ", raw->size(), " bytes for ",
                                        count, " elements"));
    }
    std::vector<bool> values(raw->begin(), raw->end());
    AppendElements(values, data);
    return OkStatus();
  }
  if (type == "UINT8") return AppendRaw<uint8_t>(*raw, count, where, data);
  if (type == "UINT16") return AppendRaw<uint16_t>(*raw, count, where, data);
  if (type == "UINT32") return AppendRaw<uint32_t>(*raw, count, where, data);
  if (type == "UINT64") return AppendRaw<uint64_t>(*raw, count, where, data);
  if (type == "INT8") return AppendRaw<int8_t>(*raw, count, where, data);
  if (type == "INT16") return AppendRaw<int16_t>(*raw, count, where, data);
  if (type == "INT32") return AppendRaw<int32_t>(*raw, count, where, data);
  if (type == "INT64") return AppendRaw<int64_t>(*raw, count, where, data);
  if (type == "FP32") return AppendRaw<float>(*raw, count, where, data);
  if (type == "FP64") return AppendRaw<double>(*raw, count, where, data);
  return InternalError(absl::StrCat(where, ": datatype ", type, " has no JSON form here"));
}

StatusOr<std::string> OutputJson(const OutputTensor& tensor, const std::string* raw) {
  const std::string where = absl::StrCat("output \"", tensor.name(), "\"");
  int64_t count = 1;
  for (int64_t d : tensor.shape()) count *= d;
  std::string data;
  bool base64 = false;
  SELENE_RETURN_IF_ERROR(AppendOutputData(tensor, raw, count, where, &data, &base64));
  ParameterMap parameters = tensor.parameters();
  if (base64) parameters["content_type"].set_string_param(kBase64);
  std::string out = absl::StrCat("{\"name\":", JsonString(tensor.name()),
                                 ",\"datatype\":", JsonString(tensor.datatype()), ",\"shape\":[",
                                 absl::StrJoin(tensor.shape(), ","), "]");
  if (!parameters.empty()) {
    out.append(",\"parameters\":");
    AppendParameters(parameters, &out);
  }
  absl::StrAppend(&out, ",\"data\":[", data, "]}");
  return out;
}

std::string StringArray(const pb::RepeatedPtrField<std::string>& strings) {
  return absl::StrCat(
      "[",
      absl::StrJoin(strings, ",",
                    [](std::string* out, const std::string& s) { out->append(JsonString(s)); }),
      "]");
}

std::string TensorsJson(
    const pb::RepeatedPtrField<inference::ModelMetadataResponse::TensorMetadata>& tensors) {
  return absl::StrCat(
      "[",
      absl::StrJoin(
          tensors, ",",
          [](std::string* out, const inference::ModelMetadataResponse::TensorMetadata& tensor) {
            absl::StrAppend(out, "{\"name\":", JsonString(tensor.name()),
                            ",\"datatype\":", JsonString(tensor.datatype()), ",\"shape\":[",
                            absl::StrJoin(tensor.shape(), ","), "]}");
          }),
      "]");
}

}  // namespace

StatusOr<inference::ModelInferRequest> ParseInferRequestJson(absl::string_view body,
                                                             const std::string& model,
                                                             const std::string& version) {
  // A JSON tensor is one Value per element: an arena makes their allocation one of a few blocks.
  pb::Arena arena;
  auto* root = pb::Arena::CreateMessage<pb::Value>(&arena);
  const pb::util::Status parsed =
      pb::util::JsonStringToMessage(pb::StringPiece(body.data(), body.size()), root);
  if (!parsed.ok()) {
    return InvalidArgumentError(
        absl::StrCat("the request body is not valid JSON: ", FirstLine(parsed)));
  }
  if (root->kind_case() != pb::Value::kStructValue) {
    return InvalidArgumentError(
        absl::StrCat("the request body must be a JSON object, not ", Describe(*root)));
  }
  const pb::Struct& object = root->struct_value();
  SELENE_RETURN_IF_ERROR(CheckKeys(object, {"id", "parameters", "inputs", "outputs"}, "request"));

  inference::ModelInferRequest request;
  request.set_model_name(model);
  request.set_model_version(version);
  if (Find(object, "id") != nullptr) {
    SELENE_ASSIGN_OR_RETURN(*request.mutable_id(), StringField(object, "id", "request"));
  }
  if (const pb::Value* parameters = Find(object, "parameters"); parameters != nullptr) {
    SELENE_RETURN_IF_ERROR(ParseParameters(*parameters, "request", request.mutable_parameters()));
  }
  const pb::Value* inputs = Find(object, "inputs");
  if (inputs == nullptr || inputs->kind_case() != pb::Value::kListValue) {
    return InvalidArgumentError("request: \"inputs\" must be an array of tensors");
  }
  for (int i = 0; i < inputs->list_value().values_size(); ++i) {
    SELENE_RETURN_IF_ERROR(ParseInput(inputs->list_value().values(i), i, request.add_inputs()));
  }
  if (const pb::Value* outputs = Find(object, "outputs"); outputs != nullptr) {
    if (outputs->kind_case() != pb::Value::kListValue) {
      return InvalidArgumentError("request: \"outputs\" must be an array");
    }
    for (int i = 0; i < outputs->list_value().values_size(); ++i) {
      SELENE_RETURN_IF_ERROR(
          ParseOutput(outputs->list_value().values(i), i, request.add_outputs()));
    }
  }
  return request;
}

StatusOr<std::string> InferResponseJson(const inference::ModelInferResponse& response) {
  std::string out = absl::StrCat("{\"model_name\":", JsonString(response.model_name()),
                                 ",\"model_version\":", JsonString(response.model_version()));
  if (!response.id().empty()) absl::StrAppend(&out, ",\"id\":", JsonString(response.id()));
  if (!response.parameters().empty()) {
    out.append(",\"parameters\":");
    AppendParameters(response.parameters(), &out);
  }
  out.append(",\"outputs\":[");
  for (int i = 0; i < response.outputs_size(); ++i) {
    const std::string* raw =
        i < response.raw_output_contents_size() ? &response.raw_output_contents(i) : nullptr;
    SELENE_ASSIGN_OR_RETURN(std::string output, OutputJson(response.outputs(i), raw));
    absl::StrAppend(&out, i == 0 ? "" : ",", output);
  }
  out.append("]}");
  return out;
}

std::string ServerMetadataJson(const inference::ServerMetadataResponse& response) {
  return absl::StrCat("{\"name\":", JsonString(response.name()),
                      ",\"version\":", JsonString(response.version()),
                      ",\"extensions\":", StringArray(response.extensions()), "}");
}

std::string ModelMetadataJson(const inference::ModelMetadataResponse& response) {
  return absl::StrCat("{\"name\":", JsonString(response.name()),
                      ",\"versions\":", StringArray(response.versions()),
                      ",\"platform\":", JsonString(response.platform()),
                      ",\"inputs\":", TensorsJson(response.inputs()),
                      ",\"outputs\":", TensorsJson(response.outputs()), "}");
}

std::string ProtoJson(const google::protobuf::Message& message) {
  pb::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  // Printing a message of a compiled type cannot fail.
  (void)pb::util::MessageToJsonString(message, &json, options);
  return json;
}

}  // namespace selene::api
