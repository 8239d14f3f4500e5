// Tests server/serving/open_inference.h on tiny models: every way an image can arrive (a raw or
// typed UINT8 tensor, raw or typed encoded bytes, several in one batch) gives the mask selene.v1
// Segment gives for it; classification outputs (probabilities, Triton's top-k strings) agree with
// Classify; metadata, configuration and statistics describe the model; and each bad request is
// refused with a message naming the tensor and what was expected.
#include "server/serving/open_inference.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "server/serving/open_inference_tensors.h"
#include "tests/server/serving/serving_test_models.h"

namespace selene::serving {
namespace {

using ::testing::AllOf;
using testing::DecodeGreyPng;
using ::testing::ElementsAre;
using testing::EncodePng;
using testing::FakeCatalog;
using ::testing::HasSubstr;
using testing::TestImage;

constexpr int kMaxBatch = 4;

ModelRegistryOptions Batched() {
  ModelRegistryOptions options;
  options.batcher.max_batch_size = kMaxBatch;
  return options;
}

cv::Mat Rgb(const cv::Mat& bgr) {
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

// A request with the images (BGR, one size) as a raw UINT8 [N, H, W, 3] tensor.
inference::ModelInferRequest RawImageRequest(const std::string& model,
                                             const std::vector<cv::Mat>& bgr_images) {
  inference::ModelInferRequest request;
  request.set_model_name(model);
  auto* input = request.add_inputs();
  input->set_name("image");
  input->set_datatype("UINT8");
  for (int64_t d : {static_cast<int64_t>(bgr_images.size()), int64_t{bgr_images[0].rows},
                    int64_t{bgr_images[0].cols}, int64_t{3}}) {
    input->add_shape(d);
  }
  std::string* raw = request.add_raw_input_contents();
  for (const cv::Mat& bgr : bgr_images) {
    const cv::Mat rgb = Rgb(bgr);
    raw->append(reinterpret_cast<const char*>(rgb.data), rgb.total() * 3);
  }
  return request;
}

// A request with the images as encoded PNGs in a BYTES [N] tensor, raw or typed.
inference::ModelInferRequest EncodedRequest(const std::string& model,
                                            const std::vector<cv::Mat>& bgr_images, bool raw) {
  inference::ModelInferRequest request;
  request.set_model_name(model);
  auto* input = request.add_inputs();
  input->set_name("image_bytes");
  input->set_datatype("BYTES");
  input->add_shape(static_cast<int64_t>(bgr_images.size()));
  std::string* buffer = raw ? request.add_raw_input_contents() : nullptr;
  for (const cv::Mat& bgr : bgr_images) {
    if (raw) {
      AppendRawBytesElement(EncodePng(bgr), buffer);
    } else {
      input->mutable_contents()->add_bytes_contents(EncodePng(bgr));
    }
  }
  return request;
}

void AskFor(inference::ModelInferRequest* request, const std::string& output, int64_t top_k = 0) {
  auto* wanted = request->add_outputs();
  wanted->set_name(output);
  if (top_k > 0) (*wanted->mutable_parameters())["classification"].set_int64_param(top_k);
}

// The output named `name` and its raw buffer.
struct Output {
  inference::ModelInferResponse::InferOutputTensor tensor;
  std::string raw;
};
Output Find(const inference::ModelInferResponse& response, const std::string& name) {
  for (int i = 0; i < response.outputs_size(); ++i) {
    if (response.outputs(i).name() == name) {
      return {response.outputs(i), response.raw_output_contents(i)};
    }
  }
  ADD_FAILURE() << "no output " << name;
  return {};
}

std::vector<float> Floats(const std::string& raw) {
  std::vector<float> values(raw.size() / sizeof(float));
  std::memcpy(values.data(), raw.data(), values.size() * sizeof(float));
  return values;
}

std::vector<std::string> BytesElements(const std::string& raw, int64_t count) {
  inference::InferTensorContents unused;
  StatusOr<std::vector<std::string>> elements = ReadBytesTensor("output", &raw, unused, count);
  EXPECT_TRUE(elements.ok()) << elements.status();
  return elements.ok() ? *elements : std::vector<std::string>();
}

class OpenInferenceTest : public ::testing::Test {
 protected:
  void SetUp() override { testing::AddOneModelPerTask(catalog_); }

  // selene.v1 Segment's mask for the image, as class ids.
  cv::Mat SegmentMask(const std::string& model, const cv::Mat& bgr) {
    v1::SegmentRequest request;
    request.set_model(model);
    request.set_image(EncodePng(bgr));
    StatusOr<v1::SegmentResponse> response = engine_.Segment(request);
    EXPECT_TRUE(response.ok()) << response.status();
    cv::Mat mask = DecodeGreyPng(response->mask_png());
    if (response->task() == v1::TASK_BINARY_SEGMENTATION) mask /= 255;
    return mask;
  }

  inference::ModelInferResponse InferOk(const inference::ModelInferRequest& request) {
    StatusOr<inference::ModelInferResponse> response = open_.ModelInfer(request);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : inference::ModelInferResponse();
  }

  Status InferError(const inference::ModelInferRequest& request) {
    return open_.ModelInfer(request).status();
  }

  // Expects the response's mask to be the masks of `images`, one after the other.
  void ExpectMasks(const inference::ModelInferResponse& response, const std::string& model,
                   const std::vector<cv::Mat>& images) {
    const Output mask = Find(response, "mask");
    EXPECT_EQ(mask.tensor.datatype(), "UINT8");
    ASSERT_THAT(mask.tensor.shape(),
                ElementsAre(static_cast<int64_t>(images.size()), images[0].rows, images[0].cols));
    const size_t pixels = images[0].total();
    for (size_t i = 0; i < images.size(); ++i) {
      const cv::Mat expected = SegmentMask(model, images[i]);
      const cv::Mat got(images[0].rows, images[0].cols, CV_8UC1,
                        const_cast<char*>(mask.raw.data() + i * pixels));
      EXPECT_EQ(cv::countNonZero(expected != got), 0) << "image " << i;
    }
  }

  FakeCatalog catalog_;
  ModelRegistry registry_{&catalog_, Batched()};
  InferenceEngine engine_{&registry_};
  OpenInference open_{&registry_, &engine_};
};

TEST_F(OpenInferenceTest, EveryImageEncodingGivesSegmentsMask) {
  const cv::Mat image = TestImage(40, 30, 3, 1);
  for (const char* model : {"job-1", "job-2"}) {
    SCOPED_TRACE(model);
    const inference::ModelInferResponse raw = InferOk(RawImageRequest(model, {image}));
    EXPECT_EQ(raw.model_name(), model);
    EXPECT_EQ(raw.model_version(), "1");
    EXPECT_EQ(raw.parameters().at("job_id").string_param(), model);
    ASSERT_EQ(raw.outputs_size(), 1);  // the mask, unless asked for more
    ExpectMasks(raw, model, {image});

    // The same pixels as typed contents.
    inference::ModelInferRequest typed = RawImageRequest(model, {image});
    const std::string pixels = typed.raw_input_contents(0);
    typed.clear_raw_input_contents();
    for (unsigned char c : pixels)
      typed.mutable_inputs(0)->mutable_contents()->add_uint_contents(c);
    ExpectMasks(InferOk(typed), model, {image});

    ExpectMasks(InferOk(EncodedRequest(model, {image}, /*raw=*/true)), model, {image});
    ExpectMasks(InferOk(EncodedRequest(model, {image}, /*raw=*/false)), model, {image});
  }
}

TEST_F(OpenInferenceTest, ABatchAnswersAsItsImagesOneByOne) {
  const std::vector<cv::Mat> images = {TestImage(40, 30, 3, 1), TestImage(40, 30, 3, 2),
                                       TestImage(40, 30, 3, 3)};
  ExpectMasks(InferOk(RawImageRequest("job-2", images)), "job-2", images);
  ExpectMasks(InferOk(EncodedRequest("job-1", images, /*raw=*/true)), "job-1", images);
}

TEST_F(OpenInferenceTest, ProbabilitiesAndLogitsComeOnRequestAtTheInputsSize) {
  const cv::Mat image = TestImage(40, 30, 3, 4);
  inference::ModelInferRequest request = RawImageRequest("job-1", {image});
  AskFor(&request, "probabilities");
  AskFor(&request, "mask");
  AskFor(&request, "logits");
  const inference::ModelInferResponse response = InferOk(request);
  ASSERT_EQ(response.outputs_size(), 3);
  EXPECT_EQ(response.outputs(0).name(), "probabilities");  // in the order asked
  EXPECT_EQ(response.outputs(1).name(), "mask");
  const Output probabilities = Find(response, "probabilities");
  const Output logits = Find(response, "logits");
  const Output mask = Find(response, "mask");
  EXPECT_EQ(probabilities.tensor.datatype(), "FP32");
  EXPECT_THAT(probabilities.tensor.shape(), ElementsAre(1, 1, 30, 40));
  EXPECT_THAT(logits.tensor.shape(), ElementsAre(1, 1, 30, 40));
  const std::vector<float> p = Floats(probabilities.raw);
  const std::vector<float> l = Floats(logits.raw);
  ASSERT_EQ(p.size(), 1200u);
  ASSERT_EQ(l.size(), 1200u);
  for (size_t i = 0; i < p.size(); ++i) {
    EXPECT_NEAR(p[i], 1.0 / (1.0 + std::exp(-double{l[i]})), 1e-6);
    // The default threshold of 0.5 is logit 0.
    EXPECT_EQ(mask.raw[i], l[i] >= 0.0f ? 1 : 0) << i;
  }

  // Multi-class: softmax over 4 classes per pixel, summing to 1.
  inference::ModelInferRequest multi = RawImageRequest("job-2", {image});
  AskFor(&multi, "probabilities");
  const Output softmax = Find(InferOk(multi), "probabilities");
  EXPECT_THAT(softmax.tensor.shape(), ElementsAre(1, 4, 30, 40));
  const std::vector<float> s = Floats(softmax.raw);
  for (size_t pixel = 0; pixel < 1200; ++pixel) {
    double sum = 0.0;
    for (size_t k = 0; k < 4; ++k) sum += s[k * 1200 + pixel];
    EXPECT_NEAR(sum, 1.0, 1e-5);
  }
}

TEST_F(OpenInferenceTest, AThresholdParameterMovesTheBinaryMask) {
  const cv::Mat image = TestImage(32, 32, 3, 5);
  inference::ModelInferRequest request = RawImageRequest("job-1", {image});
  (*request.mutable_parameters())["threshold"].set_string_param("0.99");
  AskFor(&request, "mask");
  AskFor(&request, "probabilities");
  const inference::ModelInferResponse response = InferOk(request);
  const std::vector<float> p = Floats(Find(response, "probabilities").raw);
  const std::string mask = Find(response, "mask").raw;
  // Pixels the default threshold would call foreground and 0.99 does not: without them the
  // parameter could be ignored unnoticed.
  EXPECT_TRUE(std::any_of(p.begin(), p.end(), [](float v) { return v >= 0.5f && v < 0.98f; }));
  for (size_t i = 0; i < p.size(); ++i) {
    if (std::abs(p[i] - 0.99f) > 1e-4f) {
      EXPECT_EQ(mask[i], p[i] >= 0.99f ? 1 : 0) << i;
    }
  }

  (*request.mutable_parameters())["threshold"].set_string_param("1.5");
  EXPECT_THAT(InferError(request).message(), HasSubstr("threshold 1.5 is outside (0, 1)"));
  (*request.mutable_parameters())["threshold"].set_bool_param(true);
  EXPECT_THAT(InferError(request).message(), HasSubstr("parameter \"threshold\""));
}

TEST_F(OpenInferenceTest, ClassificationAgreesWithClassify) {
  const std::vector<cv::Mat> images = {TestImage(50, 40, 3, 6), TestImage(50, 40, 3, 7)};
  inference::ModelInferRequest request = EncodedRequest("job-3", images, /*raw=*/true);
  AskFor(&request, "probabilities");
  AskFor(&request, "logits", /*top_k=*/3);
  const inference::ModelInferResponse response = InferOk(request);
  const Output probabilities = Find(response, "probabilities");
  EXPECT_THAT(probabilities.tensor.shape(), ElementsAre(2, 4));
  const Output top = Find(response, "logits");
  EXPECT_EQ(top.tensor.datatype(), "BYTES");
  EXPECT_THAT(top.tensor.shape(), ElementsAre(2, 3));
  const std::vector<float> p = Floats(probabilities.raw);
  const std::vector<std::string> ranked = BytesElements(top.raw, 6);

  for (size_t i = 0; i < images.size(); ++i) {
    v1::ClassifyRequest classify;
    classify.set_model("job-3");
    classify.set_image(EncodePng(images[i]));
    classify.set_top_k(4);
    StatusOr<v1::ClassifyResponse> expected = engine_.Classify(classify);
    ASSERT_TRUE(expected.ok()) << expected.status();
    for (const v1::LabelProbability& label : expected->labels()) {
      EXPECT_NEAR(p[i * 4 + label.class_index()], label.probability(), 1e-6);
    }
    // Ranked by logit, the order of the probabilities: "value:index:label".
    for (int rank = 0; rank < 3; ++rank) {
      const std::vector<std::string> parts = absl::StrSplit(ranked[i * 3 + rank], ':');
      ASSERT_EQ(parts.size(), 3u) << ranked[i * 3 + rank];
      int index = -1;
      ASSERT_TRUE(absl::SimpleAtoi(parts[1], &index));
      EXPECT_EQ(index, expected->labels(rank).class_index());
      EXPECT_EQ(parts[2], expected->labels(rank).label());
    }
  }

  // The top-k of the probabilities carries Classify's probabilities as values.
  inference::ModelInferRequest top_probabilities = EncodedRequest("job-3", {images[0]}, true);
  AskFor(&top_probabilities, "probabilities", /*top_k=*/10);  // clamped to the 4 classes
  const Output all = Find(InferOk(top_probabilities), "probabilities");
  EXPECT_THAT(all.tensor.shape(), ElementsAre(1, 4));
  const std::vector<std::string> parts = absl::StrSplit(BytesElements(all.raw, 4)[0], ':');
  double value = 0.0;
  ASSERT_TRUE(absl::SimpleAtod(parts[0], &value));
  int index = 0;
  ASSERT_TRUE(absl::SimpleAtoi(parts[1], &index));
  EXPECT_NEAR(value, p[index], 1e-6);
}

TEST_F(OpenInferenceTest, BadRequestsNameTheTensorAndWhatWasExpected) {
  const cv::Mat image = TestImage(40, 30, 3, 8);
  const auto expect = [&](const inference::ModelInferRequest& request, StatusCode code,
                          const std::vector<std::string>& phrases) {
    const Status status = InferError(request);
    EXPECT_EQ(status.code(), code) << status;
    for (const std::string& phrase : phrases) EXPECT_THAT(status.message(), HasSubstr(phrase));
  };

  inference::ModelInferRequest unknown = RawImageRequest("job-404", {image});
  expect(unknown, StatusCode::kNotFound, {"job-404"});
  inference::ModelInferRequest version = RawImageRequest("job-1", {image});
  version.set_model_version("2");
  expect(version, StatusCode::kNotFound, {"no version \"2\""});

  inference::ModelInferRequest fp32 = RawImageRequest("job-1", {image});
  fp32.mutable_inputs(0)->set_datatype("FP32");
  expect(fp32, StatusCode::kInvalidArgument,
         {"input \"image\"", "datatype FP32", "UINT8 [N, H, W, 3]"});
  inference::ModelInferRequest rank3 = RawImageRequest("job-1", {image});
  rank3.mutable_inputs(0)->mutable_shape()->RemoveLast();
  expect(rank3, StatusCode::kInvalidArgument, {"input \"image\"", "[1, 30, 40]", "[N, H, W, 3]"});
  inference::ModelInferRequest huge = RawImageRequest("job-1", {image});
  huge.mutable_inputs(0)->set_shape(1, int64_t{1} << 40);  // its product would overflow int64
  huge.mutable_inputs(0)->set_shape(2, int64_t{1} << 40);
  expect(huge, StatusCode::kInvalidArgument, {"input \"image\"", "over the limit of"});
  inference::ModelInferRequest short_raw = RawImageRequest("job-1", {image});
  short_raw.mutable_raw_input_contents(0)->pop_back();
  expect(short_raw, StatusCode::kInvalidArgument, {"input \"image\"", "3599 bytes", "3600"});
  inference::ModelInferRequest too_many =
      RawImageRequest("job-1", std::vector<cv::Mat>(kMaxBatch + 1, image));
  expect(too_many, StatusCode::kInvalidArgument, {"batch of 5", "1 to 4"});
  inference::ModelInferRequest two_inputs = RawImageRequest("job-1", {image});
  *two_inputs.add_inputs() = two_inputs.inputs(0);
  two_inputs.add_raw_input_contents(two_inputs.raw_input_contents(0));
  expect(two_inputs, StatusCode::kInvalidArgument, {"exactly one input"});
  inference::ModelInferRequest renamed = RawImageRequest("job-1", {image});
  renamed.mutable_inputs(0)->set_name("pixels");
  expect(renamed, StatusCode::kInvalidArgument,
         {"no input \"pixels\"", "image UINT8 [-1, -1, -1, 3]", "image_bytes BYTES"});
  inference::ModelInferRequest unknown_output = RawImageRequest("job-1", {image});
  AskFor(&unknown_output, "boxes");
  expect(unknown_output, StatusCode::kInvalidArgument, {"no output \"boxes\"", "mask UINT8"});
  inference::ModelInferRequest top_k = RawImageRequest("job-1", {image});
  AskFor(&top_k, "mask", 3);
  expect(top_k, StatusCode::kInvalidArgument, {"classification", "segments"});
  inference::ModelInferRequest garbage = EncodedRequest("job-1", {image, image}, false);
  garbage.mutable_inputs(0)->mutable_contents()->set_bytes_contents(1, "not an image");
  expect(garbage, StatusCode::kInvalidArgument, {"image_bytes\"[1]", "cannot decode"});
  inference::ModelInferRequest sizes =
      EncodedRequest("job-1", {image, TestImage(20, 20, 3, 1)}, false);
  expect(sizes, StatusCode::kInvalidArgument, {"one size", "40x30 and 20x20"});

  // Nothing above broke the model.
  ExpectMasks(InferOk(RawImageRequest("job-1", {image})), "job-1", {image});
}

TEST_F(OpenInferenceTest, MetadataAndConfigurationDescribeTheModel) {
  const inference::ServerMetadataResponse server = open_.ServerMetadata();
  EXPECT_EQ(server.name(), "selene");
  EXPECT_THAT(server.extensions(),
              ElementsAre("classification", "model_configuration", "statistics"));

  inference::ModelMetadataRequest request;
  request.set_name("job-2");
  StatusOr<inference::ModelMetadataResponse> metadata = open_.ModelMetadata(request);
  ASSERT_TRUE(metadata.ok()) << metadata.status();
  EXPECT_THAT(metadata->versions(), ElementsAre("1"));
  ASSERT_EQ(metadata->inputs_size(), 2);
  EXPECT_EQ(metadata->inputs(0).name(), "image");
  EXPECT_THAT(metadata->inputs(0).shape(), ElementsAre(-1, -1, -1, 3));
  ASSERT_EQ(metadata->outputs_size(), 3);
  EXPECT_THAT(metadata->outputs(1).shape(), ElementsAre(-1, 4, -1, -1));
  request.set_name("job-3");
  metadata = open_.ModelMetadata(request);
  ASSERT_TRUE(metadata.ok());
  EXPECT_EQ(metadata->outputs(0).name(), "probabilities");
  EXPECT_THAT(metadata->outputs(0).shape(), ElementsAre(-1, 4));
  request.set_name("job-404");
  EXPECT_EQ(open_.ModelMetadata(request).status().code(), StatusCode::kNotFound);

  inference::ModelReadyRequest ready;
  ready.set_name("job-1");
  ASSERT_TRUE(open_.ModelReady(ready).ok());
  EXPECT_TRUE(open_.ModelReady(ready)->ready());
  ready.set_name("job-404");
  EXPECT_EQ(open_.ModelReady(ready).status().code(), StatusCode::kNotFound);

  inference::ModelConfigRequest config_request;
  config_request.set_name("job-1");
  StatusOr<inference::ModelConfigResponse> config = open_.ModelConfig(config_request);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->config().max_batch_size(), kMaxBatch);
  const inference::ModelInput& image = config->config().input(0);
  EXPECT_EQ(image.format(), inference::ModelInput::FORMAT_NHWC);
  EXPECT_EQ(image.data_type(), inference::TYPE_UINT8);
  EXPECT_THAT(image.dims(), ElementsAre(-1, -1, 3));  // no batch dimension
  EXPECT_EQ(config->config().output(0).data_type(), inference::TYPE_UINT8);
  EXPECT_EQ(config->config().dynamic_batching().max_queue_delay_microseconds(), 5000u);
}

TEST_F(OpenInferenceTest, StatisticsCountRequestsImagesAndFailures) {
  const cv::Mat image = TestImage(40, 30, 3, 9);
  InferOk(RawImageRequest("job-1", {image}));
  InferOk(RawImageRequest("job-1", {image, image}));
  inference::ModelInferRequest bad = RawImageRequest("job-1", {image});
  bad.mutable_inputs(0)->set_datatype("INT8");
  EXPECT_FALSE(open_.ModelInfer(bad).ok());

  inference::ModelStatisticsRequest request;
  request.set_name("job-1");
  StatusOr<inference::ModelStatisticsResponse> stats = open_.ModelStatistics(request);
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_EQ(stats->model_stats_size(), 1);
  const inference::ModelStatistics& model = stats->model_stats(0);
  EXPECT_EQ(model.inference_count(), 3u);
  EXPECT_EQ(model.inference_stats().success().count(), 2u);
  EXPECT_EQ(model.inference_stats().fail().count(), 1u);
  EXPECT_EQ(model.inference_stats().queue().count(), 3u);  // images through the batcher
  EXPECT_GE(model.execution_count(), 2u);
  EXPECT_GT(model.last_inference(), 0u);
  uint64_t batched = 0;
  for (const inference::InferBatchStatistics& batch : model.batch_stats()) {
    batched += batch.batch_size() * batch.compute_infer().count();
  }
  EXPECT_EQ(batched, 3u);

  request.clear_name();  // every loaded model
  stats = open_.ModelStatistics(request);
  ASSERT_TRUE(stats.ok());
  ASSERT_EQ(stats->model_stats_size(), 1);
  EXPECT_EQ(stats->model_stats(0).name(), "job-1");
}

}  // namespace
}  // namespace selene::serving
