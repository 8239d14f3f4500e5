// Tests server/api/open_inference_json.h: REST v2 JSON bodies to the protos of package inference
// and back, without a server: every datatype's JSON form, nested data, base64 BYTES, parameters
// of each JSON type, and an error naming the tensor and the problem for each kind of bad body.
#include "server/api/open_inference_json.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"

namespace selene::api {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string ParseError(const std::string& body) {
  StatusOr<inference::ModelInferRequest> parsed = ParseInferRequestJson(body, "m", "");
  EXPECT_FALSE(parsed.ok()) << body;
  EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << parsed.status();
  return std::string(parsed.status().message());
}

TEST(OpenInferenceJsonTest, ParsesEveryPartOfAnInferRequest) {
  const std::string png("\x89PNG\r\n\x1a\n\x00\x01\xff", 11);  // with a NUL
  StatusOr<inference::ModelInferRequest> parsed = ParseInferRequestJson(
      R"json({
        "id": "req-7",
        "parameters": {"threshold": 0.3, "count": 3, "fast": true, "name": "x", "big": 1e300},
        "inputs": [
          {"name": "image", "datatype": "UINT8", "shape": [1, 2, 2, 3],
           "data": [[[[0, 1, 2], [3, 4, 5]], [[6, 7, 8], [9, 10, 255]]]]},
          {"name": "image_bytes", "datatype": "BYTES", "shape": [2],
           "parameters": {"content_type": "base64"}, "data": [")json" +
          absl::Base64Escape(png) + R"json(", ""]},
          {"name": "text", "datatype": "BYTES", "shape": [1], "data": ["héllo"]},
          {"name": "f", "datatype": "FP32", "shape": [3], "data": [0.5, -1, 3e-3]},
          {"name": "d", "datatype": "FP64", "shape": [1], "data": [0.1]},
          {"name": "b", "datatype": "BOOL", "shape": [2], "data": [true, false]},
          {"name": "i", "datatype": "INT8", "shape": [2], "data": [-128, 127]},
          {"name": "l", "datatype": "INT64", "shape": [1], "data": [-9007199254740992]},
          {"name": "u", "datatype": "UINT64", "shape": [0], "data": []}
        ],
        "outputs": [{"name": "probabilities", "parameters": {"classification": 3}}]
      })json",
      "latest:classification", "1");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const inference::ModelInferRequest& r = *parsed;
  EXPECT_EQ(r.model_name(), "latest:classification");
  EXPECT_EQ(r.model_version(), "1");
  EXPECT_EQ(r.id(), "req-7");
  EXPECT_EQ(r.parameters().at("threshold").string_param(), "0.3");  // InferParameter: no double
  EXPECT_EQ(r.parameters().at("count").int64_param(), 3);
  EXPECT_TRUE(r.parameters().at("fast").bool_param());
  EXPECT_EQ(r.parameters().at("name").string_param(), "x");
  EXPECT_EQ(r.parameters().at("big").string_param(), "1e+300");
  ASSERT_EQ(r.inputs_size(), 9);
  EXPECT_EQ(r.inputs(0).name(), "image");
  EXPECT_EQ(r.inputs(0).datatype(), "UINT8");
  EXPECT_THAT(r.inputs(0).shape(), ElementsAre(1, 2, 2, 3));
  EXPECT_THAT(r.inputs(0).contents().uint_contents(),
              ElementsAre(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255));
  EXPECT_THAT(r.inputs(1).contents().bytes_contents(), ElementsAre(png, ""));
  EXPECT_THAT(r.inputs(2).contents().bytes_contents(), ElementsAre("héllo"));
  EXPECT_THAT(r.inputs(3).contents().fp32_contents(), ElementsAre(0.5f, -1.0f, 3e-3f));
  EXPECT_THAT(r.inputs(4).contents().fp64_contents(), ElementsAre(0.1));
  EXPECT_THAT(r.inputs(5).contents().bool_contents(), ElementsAre(true, false));
  EXPECT_THAT(r.inputs(6).contents().int_contents(), ElementsAre(-128, 127));
  EXPECT_THAT(r.inputs(7).contents().int64_contents(), ElementsAre(-9007199254740992));
  EXPECT_EQ(r.inputs(8).contents().uint64_contents_size(), 0);
  ASSERT_EQ(r.outputs_size(), 1);
  EXPECT_EQ(r.outputs(0).name(), "probabilities");
  EXPECT_EQ(r.outputs(0).parameters().at("classification").int64_param(), 3);
  EXPECT_EQ(r.raw_input_contents_size(), 0);
}

TEST(OpenInferenceJsonTest, BadBodiesNameTheProblem) {
  EXPECT_THAT(ParseError("{\"inputs\": [}"), HasSubstr("the request body is not valid JSON: "));
  EXPECT_THAT(ParseError(""), HasSubstr("not valid JSON"));
  EXPECT_THAT(ParseError("[1, 2]"), HasSubstr("must be a JSON object, not an array"));
  EXPECT_THAT(
      ParseError(R"({"input": []})"),
      HasSubstr("request: unknown key \"input\"; expected id, parameters, inputs, outputs"));
  EXPECT_THAT(ParseError(R"({"id": 7, "inputs": []})"), HasSubstr("\"id\" must be a string"));
  EXPECT_THAT(ParseError(R"({})"), HasSubstr("\"inputs\" must be an array"));
  EXPECT_THAT(ParseError(R"({"inputs": [{"datatype": "UINT8", "shape": [1], "data": [1]}]})"),
              HasSubstr("inputs[0]: \"name\" missing"));
  EXPECT_THAT(ParseError(R"({"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, 2],
                                         "data": [1, 2, 3]}]})"),
              HasSubstr("input \"image\": \"data\" holds 3 elements; shape [1, 2] needs 2"));
  EXPECT_THAT(ParseError(R"({"inputs": [{"name": "image", "datatype": "UINT8", "shape": [2],
                                         "data": [1, 256]}]})"),
              HasSubstr("input \"image\": data[1] is 256, outside UINT8's range 0..255"));
  EXPECT_THAT(ParseError(R"({"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1],
                                         "data": [1.5]}]})"),
              HasSubstr("input \"image\": data[0] is 1.5, not an integer (datatype UINT8)"));
  EXPECT_THAT(ParseError(R"({"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1],
                                         "data": ["7"]}]})"),
              HasSubstr("data[0] is a string, not an integer"));
  EXPECT_THAT(ParseError(R"({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1],
                                         "data": [null]}]})"),
              HasSubstr("input \"x\": data[0] is null, not a number (datatype FP32)"));
  EXPECT_THAT(ParseError(R"({"inputs": [{"name": "x", "datatype": "BOOL", "shape": [1],
                                         "data": [1]}]})"),
              HasSubstr("data[0] is 1, not true or false"));
  EXPECT_THAT(ParseError(R"({"inputs": [{"name": "image_bytes", "datatype": "BYTES", "shape": [1],
                                         "parameters": {"content_type": "base64"},
                                         "data": ["!!not base64!!"]}]})"),
              HasSubstr("input \"image_bytes\": data[0] is not base64"));
  EXPECT_THAT(ParseError(R"({"inputs": [{"name": "x", "datatype": "COMPLEX", "shape": [1],
                                         "data": [1]}]})"),
              HasSubstr("input \"x\": unknown datatype \"COMPLEX\""));
  EXPECT_THAT(ParseError(R"({"inputs": [{"name": "x", "datatype": "FP16", "shape": [1],
                                         "data": [1]}]})"),
              HasSubstr("datatype FP16 has no JSON form here; send FP32"));
  EXPECT_THAT(ParseError(R"({"inputs": [{"name": "x", "datatype": "UINT8", "shape": [-1],
                                         "data": []}]})"),
              HasSubstr("input \"x\": \"shape\" holds -1; dimensions are integers >= 0"));
  EXPECT_THAT(ParseError(R"({"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1],
                                         "data": [1], "contents": {}}]})"),
              HasSubstr("input \"x\": unknown key \"contents\""));
  EXPECT_THAT(ParseError(R"({"inputs": [{"name": "x", "datatype": "UINT8", "shape": [4],
                                         "parameters": {"binary_data_size": 4}}]})"),
              HasSubstr("input \"x\": binary tensor data (Triton's binary_data_size)"));
  EXPECT_THAT(ParseError(R"({"parameters": {"threshold": [0.5]}, "inputs": []})"),
              HasSubstr("request: parameter \"threshold\" must be a bool, number or string, not "
                        "an array"));
  EXPECT_THAT(ParseError(R"({"inputs": [], "outputs": [{"name": "mask", "parameters": 3}]})"),
              HasSubstr("output \"mask\": \"parameters\" must be an object, not 3"));
}

std::string RawFloats(const std::vector<float>& values) {
  std::string raw(values.size() * sizeof(float), '\0');
  std::memcpy(raw.data(), values.data(), raw.size());
  return raw;
}

std::string RawBytes(const std::vector<std::string>& elements) {
  std::string raw;
  for (const std::string& e : elements) {
    const uint32_t length = static_cast<uint32_t>(e.size());
    raw.append(reinterpret_cast<const char*>(&length), 4);
    raw.append(e);
  }
  return raw;
}

inference::ModelInferResponse::InferOutputTensor* AddOutput(inference::ModelInferResponse* response,
                                                            const std::string& name,
                                                            const std::string& datatype,
                                                            std::vector<int64_t> shape,
                                                            std::string raw) {
  auto* output = response->add_outputs();
  output->set_name(name);
  output->set_datatype(datatype);
  for (int64_t d : shape) output->add_shape(d);
  response->add_raw_output_contents(std::move(raw));
  return output;
}

TEST(OpenInferenceJsonTest, AnswersDecodeTheRawOutputs) {
  inference::ModelInferResponse response;
  response.set_model_name("latest");
  response.set_model_version("1");
  response.set_id("req \"7\"");
  (*response.mutable_parameters())["job_id"].set_string_param("job-3");
  (*response.mutable_parameters())["a"].set_int64_param(-2);
  AddOutput(&response, "mask", "UINT8", {1, 2, 2}, std::string("\x00\x01\x01\x00", 4));
  AddOutput(&response, "probabilities", "FP32", {1, 3}, RawFloats({0.1f, 0.25f, 1.0f}));
  AddOutput(&response, "top", "BYTES", {1, 2}, RawBytes({"0.9:1:circle", "0.1:0:square"}));
  AddOutput(&response, "blob", "BYTES", {1}, RawBytes({std::string("\xff\x00", 2)}));
  StatusOr<std::string> json = InferResponseJson(response);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(*json, R"json({"model_name":"latest","model_version":"1","id":"req \"7\"",)json"
                   R"json("parameters":{"a":-2,"job_id":"job-3"},"outputs":[)json"
                   R"json({"name":"mask","datatype":"UINT8","shape":[1,2,2],"data":[0,1,1,0]},)json"
                   R"json({"name":"probabilities","datatype":"FP32","shape":[1,3],)json"
                   R"json("data":[0.100000001,0.25,1]},)json"
                   R"json({"name":"top","datatype":"BYTES","shape":[1,2],)json"
                   R"json("data":["0.9:1:circle","0.1:0:square"]},)json"
                   R"json({"name":"blob","datatype":"BYTES","shape":[1],)json"
                   R"json("parameters":{"content_type":"base64"},"data":["/wA="]}]})json");

  // A buffer that does not fit its shape is the core's fault, not the client's.
  response.set_raw_output_contents(0, "\x01");
  EXPECT_EQ(InferResponseJson(response).status().code(), StatusCode::kInternal);
}

TEST(OpenInferenceJsonTest, MetadataIsKServesForm) {
  inference::ServerMetadataResponse server;
  server.set_name("selene");
  server.set_version("1.0.0");
  server.add_extensions("classification");
  server.add_extensions("statistics");
  EXPECT_EQ(ServerMetadataJson(server),
            R"({"name":"selene","version":"1.0.0","extensions":["classification","statistics"]})");

  inference::ModelMetadataResponse model;
  model.set_name("job-1");
  model.add_versions("1");
  model.set_platform("selene_libtorch");
  auto* input = model.add_inputs();
  input->set_name("image");
  input->set_datatype("UINT8");
  for (int64_t d : {-1, -1, -1, 3}) input->add_shape(d);
  auto* output = model.add_outputs();
  output->set_name("mask");
  output->set_datatype("UINT8");
  for (int64_t d : {-1, -1, -1}) output->add_shape(d);
  EXPECT_EQ(ModelMetadataJson(model),
            R"json({"name":"job-1","versions":["1"],"platform":"selene_libtorch",)json"
            R"json("inputs":[{"name":"image","datatype":"UINT8","shape":[-1,-1,-1,3]}],)json"
            R"json("outputs":[{"name":"mask","datatype":"UINT8","shape":[-1,-1,-1]}]})json");

  inference::ModelConfig config;
  config.set_name("job-1");
  config.set_max_batch_size(8);
  EXPECT_THAT(ProtoJson(config), HasSubstr(R"("max_batch_size":8)"));
}

}  // namespace
}  // namespace selene::api
