// Tests server/api/grpc_status.h: every absl code reaches gRPC as the same code, message kept
// (cut when it would not fit the grpc-message trailer).
#include "server/api/grpc_status.h"

#include <gtest/gtest.h>

#include <string>

namespace selene::api {
namespace {

TEST(GrpcStatusTest, OkIsOk) { EXPECT_TRUE(ToGrpcStatus(OkStatus()).ok()); }

TEST(GrpcStatusTest, EveryCodeKeepsItsNumberAndMessage) {
  for (int code = 1; code <= 16; ++code) {
    const Status status(static_cast<absl::StatusCode>(code), "job job-3 not found");
    const grpc::Status converted = ToGrpcStatus(status);
    EXPECT_EQ(static_cast<int>(converted.error_code()), code);
    EXPECT_EQ(converted.error_message(), "job job-3 not found");
  }
  EXPECT_EQ(ToGrpcStatus(absl::NotFoundError("x")).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(ToGrpcStatus(absl::UnauthenticatedError("x")).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ToGrpcStatus(absl::ResourceExhaustedError("x")).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST(GrpcStatusTest, UnknownCodeBecomesUnknown) {
  const Status status(static_cast<absl::StatusCode>(99), "odd");
  EXPECT_EQ(ToGrpcStatus(status).error_code(), grpc::StatusCode::UNKNOWN);
  EXPECT_EQ(ToGrpcStatus(status).error_message(), "odd");
}

// Percent-encoded size of a grpc-message: printable ASCII but '%' is 1 byte, the rest 3.
size_t EncodedSize(const std::string& message) {
  size_t size = 0;
  for (unsigned char c : message) size += (c >= 0x20 && c <= 0x7E && c != '%') ? 1 : 3;
  return size;
}

TEST(GrpcStatusTest, LongMessagesAreCutToFitTheTrailer) {
  const std::string fits(4000, 'x');
  EXPECT_EQ(ToGrpcStatus(absl::NotFoundError(fits)).error_message(), fits);

  const std::string ascii =
      ToGrpcStatus(absl::NotFoundError(std::string(100000, 'x'))).error_message();
  EXPECT_LE(EncodedSize(ascii), kMaxGrpcMessageBytes);
  EXPECT_GT(ascii.size(), 4000u);
  EXPECT_EQ(ascii.substr(ascii.size() - 18), "... (100000 bytes)");

  // Two-byte UTF-8 characters: three times the cost each byte, and never cut in half.
  std::string accents;
  for (int i = 0; i < 50000; ++i) accents += "\xc3\xa9";
  const std::string cut = ToGrpcStatus(absl::InvalidArgumentError(accents)).error_message();
  EXPECT_LE(EncodedSize(cut), kMaxGrpcMessageBytes);
  const size_t kept = cut.find("...");
  ASSERT_NE(kept, std::string::npos);
  EXPECT_EQ(kept % 2, 0u);
  EXPECT_EQ(cut.substr(0, kept), accents.substr(0, kept));
}

TEST(GrpcStatusTest, CodeNamesAreTheCanonicalOnes) {
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::OK), "OK");
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::INVALID_ARGUMENT), "INVALID_ARGUMENT");
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::UNAUTHENTICATED), "UNAUTHENTICATED");
}

}  // namespace
}  // namespace selene::api
