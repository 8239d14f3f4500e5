// The Open Inference Protocol's REST bodies ("KServe v2" JSON) to and from the protos of package
// inference that serving::OpenInference speaks. JSON is parsed with protobuf's own parser into
// google.protobuf.Value, so no other JSON library comes in.
//
// Request tensors: "data" is flat or nested (row-major) and must hold as many elements as
// "shape" says. BOOL takes true/false; UINT8..UINT64 and INT8..INT64 take integers in the
// type's range; FP32 and FP64 take numbers; they go to the typed InferTensorContents. BYTES
// takes strings: their UTF-8 bytes, or, when the input's parameters hold "content_type":
// "base64" (MLServer's convention), the bytes they base64-decode to. That is how an encoded
// image travels over JSON:
//   {"inputs": [{"name": "image_bytes", "datatype": "BYTES", "shape": [1],
//                "parameters": {"content_type": "base64"}, "data": ["iVBORw0KGgo..."]}]}
// Parameters (request, input, output): true/false -> bool_param, an integer -> int64_param, a
// string -> string_param, any other number -> string_param holding its shortest decimal text
// (InferParameter has no double: {"threshold": 0.3} arrives as the string "0.3").
// Triton's binary tensor extension (binary_data_size) is refused, naming the input.
// Cost: each JSON element becomes a google.protobuf.Value (on an arena): a whole infer request
// with a 512x512 RGB image as a UINT8 tensor (3.6 MB of JSON) took 0.54-0.71 s, where the same
// kind of image as a base64 PNG is a few hundred KB and far quicker: send large images encoded.
//
// Response tensors are decoded from raw_output_contents (or the typed contents) into a flat
// "data" array: numbers, or strings for BYTES (base64, with "content_type": "base64" in the
// output's parameters, when an element is not valid UTF-8). Non-finite floats become null.
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "common/status.h"
#include "google/protobuf/message.h"
#include "inference/grpc_predict_v2.pb.h"

namespace selene::api {

// The body of POST /v2/models/{model}[/versions/{version}]/infer as a request for `model` and
// `version`. InvalidArgument naming what is wrong: not JSON (with the parser's message), not an
// object, a missing or mistyped field, an unknown key, data that does not fit the datatype or
// the shape, bad base64.
StatusOr<inference::ModelInferRequest> ParseInferRequestJson(absl::string_view body,
                                                             const std::string& model,
                                                             const std::string& version);

// The answer to an infer request. Internal when the outputs' raw buffers do not match their
// datatypes and shapes (the core's bug, not the client's).
StatusOr<std::string> InferResponseJson(const inference::ModelInferResponse& response);

// {"name", "version", "extensions": [...]}.
std::string ServerMetadataJson(const inference::ServerMetadataResponse& response);
// {"name", "versions", "platform", "inputs": [{"name", "datatype", "shape"}], "outputs": [...]}.
std::string ModelMetadataJson(const inference::ModelMetadataResponse& response);
// Protobuf's JSON mapping with the proto's field names and every field, defaults included
// (Triton's model configuration and statistics). 64-bit integers are strings there, as the
// mapping says.
std::string ProtoJson(const google::protobuf::Message& message);

}  // namespace selene::api
