// Tests server/serving/open_inference_tensors.h: element counts, raw and typed UINT8 and BYTES
// tensors, and that every malformed buffer is refused naming the tensor and the numbers.
#include "server/serving/open_inference_tensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace selene::serving {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

google::protobuf::RepeatedField<int64_t> Shape(std::vector<int64_t> dims) {
  return google::protobuf::RepeatedField<int64_t>(dims.begin(), dims.end());
}

TEST(OpenInferenceTensorsTest, ElementCountRefusesNegativeAndHugeShapes) {
  EXPECT_EQ(*ElementCount("image", Shape({2, 3, 4}), 100), 24);
  EXPECT_EQ(*ElementCount("image", Shape({0, 3}), 100), 0);
  EXPECT_THAT(ElementCount("image", Shape({2, -1}), 100).status().message(),
              HasSubstr("input \"image\": shape [2, -1] has a negative dimension"));
  // A product that would overflow int64 is caught before it is computed.
  EXPECT_THAT(ElementCount("image", Shape({1LL << 40, 1LL << 40}), 1000).status().message(),
              HasSubstr("more than 1000 elements"));
}

TEST(OpenInferenceTensorsTest, Uint8FromRawOrTypedContents) {
  inference::InferTensorContents contents;
  const std::string raw = "abc";
  EXPECT_EQ(*ReadUint8Tensor("image", &raw, contents, 3), "abc");
  EXPECT_THAT(ReadUint8Tensor("image", &raw, contents, 4).status().message(),
              HasSubstr("input \"image\": raw contents hold 3 bytes; its shape needs 4"));
  for (uint32_t v : {0u, 7u, 255u}) contents.add_uint_contents(v);
  EXPECT_EQ(*ReadUint8Tensor("image", nullptr, contents, 3), std::string("\x00\x07\xff", 3));
  contents.add_uint_contents(256);
  EXPECT_THAT(ReadUint8Tensor("image", nullptr, contents, 4).status().message(),
              HasSubstr("element 3 is 256, over 255"));
  EXPECT_THAT(ReadUint8Tensor("image", nullptr, contents, 5).status().message(),
              HasSubstr("uint_contents holds 4 values; its shape needs 5"));
}

TEST(OpenInferenceTensorsTest, BytesElementsRoundTripAndTruncationIsNamed) {
  std::string raw;
  AppendRawBytesElement("png", &raw);
  AppendRawBytesElement("", &raw);
  AppendRawBytesElement(std::string(300, 'x'), &raw);
  EXPECT_EQ(raw.substr(0, 4), std::string("\x03\x00\x00\x00", 4));  // little-endian length
  inference::InferTensorContents none;
  StatusOr<std::vector<std::string>> elements = ReadBytesTensor("image_bytes", &raw, none, 3);
  ASSERT_TRUE(elements.ok()) << elements.status();
  EXPECT_THAT(*elements, ElementsAre("png", "", std::string(300, 'x')));
  EXPECT_THAT(ReadBytesTensor("image_bytes", &raw, none, 2).status().message(),
              HasSubstr("raw contents hold 3 elements; its shape needs 2"));

  const std::string cut = raw.substr(0, raw.size() - 1);
  EXPECT_THAT(ReadBytesTensor("image_bytes", &cut, none, 3).status().message(),
              HasSubstr("element 2 says 300 bytes but only 299 are left"));
  const std::string stub = raw.substr(0, 9);  // "png" and two bytes of the next length
  EXPECT_THAT(ReadBytesTensor("image_bytes", &stub, none, 2).status().message(),
              HasSubstr("end inside the 4-byte length of element 1"));

  inference::InferTensorContents typed;
  typed.add_bytes_contents("a");
  EXPECT_THAT(*ReadBytesTensor("image_bytes", nullptr, typed, 1), ElementsAre("a"));
  EXPECT_THAT(ReadBytesTensor("image_bytes", nullptr, typed, 2).status().message(),
              HasSubstr("bytes_contents holds 1 elements; its shape needs 2"));
}

TEST(OpenInferenceTensorsTest, FloatsAreRawLittleEndian) {
  const std::string raw = RawFloats({1.0f, -2.5f});
  ASSERT_EQ(raw.size(), 8u);
  EXPECT_EQ(raw.substr(0, 4), std::string("\x00\x00\x80\x3f", 4));
}

}  // namespace
}  // namespace selene::serving
