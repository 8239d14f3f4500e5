// The Open Inference Protocol's tensor encodings: a tensor's elements arrive either in the
// request's raw_input_contents (row-major, little-endian, no padding; a BYTES element is a 4-byte
// little-endian length then its bytes) or in the typed InferTensorContents, and answers go back
// raw. Reading checks the element count against the shape, naming the tensor in every error.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/status.h"
#include "inference/grpc_predict_v2.pb.h"

namespace selene::serving {

// "[1, 30, 40, 3]".
std::string ShapeText(const google::protobuf::RepeatedField<int64_t>& shape);

// The number of elements `shape` holds; InvalidArgument naming `tensor` for a negative
// dimension or a count over `max_elements`.
StatusOr<int64_t> ElementCount(absl::string_view tensor,
                               const google::protobuf::RepeatedField<int64_t>& shape,
                               int64_t max_elements);

// A UINT8 tensor's `count` elements, from `raw` (when not null) or contents.uint_contents (each
// must be <= 255).
StatusOr<std::string> ReadUint8Tensor(absl::string_view tensor, const std::string* raw,
                                      const inference::InferTensorContents& contents,
                                      int64_t count);

// A BYTES tensor's `count` elements, from `raw` (when not null) or contents.bytes_contents.
StatusOr<std::vector<std::string>> ReadBytesTensor(absl::string_view tensor, const std::string* raw,
                                                   const inference::InferTensorContents& contents,
                                                   int64_t count);

// The elements of a raw BYTES buffer, each a 4-byte little-endian length then its bytes.
// InvalidArgument saying where the buffer breaks off.
StatusOr<std::vector<std::string>> SplitRawBytes(absl::string_view raw);

// Raw encodings for answers.
void AppendRawBytesElement(absl::string_view element, std::string* raw);
std::string RawFloats(const std::vector<float>& values);

}  // namespace selene::serving
