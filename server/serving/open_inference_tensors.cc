#include "server/serving/open_inference_tensors.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace selene::serving {
namespace {

uint32_t ReadLittleEndian32(const char* p) {
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  return uint32_t{b[0]} | uint32_t{b[1]} << 8 | uint32_t{b[2]} << 16 | uint32_t{b[3]} << 24;
}

}  // namespace

std::string ShapeText(const google::protobuf::RepeatedField<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

StatusOr<int64_t> ElementCount(absl::string_view tensor,
                               const google::protobuf::RepeatedField<int64_t>& shape,
                               int64_t max_elements) {
  int64_t count = 1;
  for (int64_t dimension : shape) {
    if (dimension < 0) {
      return InvalidArgumentError(absl::StrCat("input \"", tensor, "\": shape ", ShapeText(shape),
                                               " has a negative dimension"));
    }
    // Checked before multiplying, so no product overflows.
    if (dimension > 0 && count > max_elements / dimension) {
      return InvalidArgumentError(absl::StrCat("input \"", tensor, "\": shape ", ShapeText(shape),
                                               " holds more than ", max_elements, " elements"));
    }
    count *= dimension;
  }
  return count;
}

StatusOr<std::string> ReadUint8Tensor(absl::string_view tensor, const std::string* raw,
                                      const inference::InferTensorContents& contents,
                                      int64_t count) {
  if (raw != nullptr) {
    if (static_cast<int64_t>(raw->size()) != count) {
      return InvalidArgumentError(absl::StrCat("input \"", tensor, "\": raw contents hold ",
                                               raw->size(), " bytes; its shape needs ", count));
    }
    return *raw;
  }
  if (contents.uint_contents_size() != count) {
    return InvalidArgumentError(
        absl::StrCat("input \"", tensor, "\": contents.uint_contents holds ",
                     contents.uint_contents_size(), " values; its shape needs ", count));
  }
  std::string bytes(static_cast<size_t>(count), '\0');
  for (int64_t i = 0; i < count; ++i) {
    const uint32_t value = contents.uint_contents(static_cast<int>(i));
    if (value > 255) {
      return InvalidArgumentError(absl::StrCat("input \"", tensor, "\": element ", i, " is ", value,
                                               ", over 255 for UINT8"));
    }
    bytes[static_cast<size_t>(i)] = static_cast<char>(value);
  }
  return bytes;
}

StatusOr<std::vector<std::string>> ReadBytesTensor(absl::string_view tensor, const std::string* raw,
                                                   const inference::InferTensorContents& contents,
                                                   int64_t count) {
  std::vector<std::string> elements;
  if (raw == nullptr) {
    if (contents.bytes_contents_size() != count) {
      return InvalidArgumentError(
          absl::StrCat("input \"", tensor, "\": contents.bytes_contents holds ",
                       contents.bytes_contents_size(), " elements; its shape needs ", count));
    }
    elements.assign(contents.bytes_contents().begin(), contents.bytes_contents().end());
    return elements;
  }
  StatusOr<std::vector<std::string>> split = SplitRawBytes(*raw);
  if (!split.ok()) {
    return InvalidArgumentError(absl::StrCat("input \"", tensor, "\": ", split.status().message()));
  }
  elements = *std::move(split);
  if (static_cast<int64_t>(elements.size()) != count) {
    return InvalidArgumentError(absl::StrCat("input \"", tensor, "\": raw contents hold ",
                                             elements.size(), " elements; its shape needs ",
                                             count));
  }
  return elements;
}

StatusOr<std::vector<std::string>> SplitRawBytes(absl::string_view raw) {
  std::vector<std::string> elements;
  size_t at = 0;
  while (at < raw.size()) {
    if (raw.size() - at < 4) {
      return InvalidArgumentError(absl::StrCat("raw contents end inside the 4-byte length of ",
                                               "element ", elements.size()));
    }
    const uint32_t length = ReadLittleEndian32(raw.data() + at);
    at += 4;
    if (raw.size() - at < length) {
      return InvalidArgumentError(absl::StrCat("element ", elements.size(), " says ", length,
                                               " bytes but only ", raw.size() - at, " are left"));
    }
    elements.emplace_back(raw.data() + at, length);
    at += length;
  }
  return elements;
}

void AppendRawBytesElement(absl::string_view element, std::string* raw) {
  const uint32_t length = static_cast<uint32_t>(element.size());
  const char prefix[4] = {static_cast<char>(length & 0xff), static_cast<char>(length >> 8 & 0xff),
                          static_cast<char>(length >> 16 & 0xff),
                          static_cast<char>(length >> 24 & 0xff)};
  raw->append(prefix, 4);
  raw->append(element.data(), element.size());
}

std::string RawFloats(const std::vector<float>& values) {
  // The protocol is little-endian, as is every host Selene builds for (x86-64, aarch64).
  static_assert(sizeof(float) == 4);
  std::string raw(values.size() * sizeof(float), '\0');
  if (!values.empty()) std::memcpy(raw.data(), values.data(), raw.size());
  return raw;
}

}  // namespace selene::serving
