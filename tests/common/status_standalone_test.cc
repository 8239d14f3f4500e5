// The engine-only build's Status, tested directly (the full build aliases absl instead).
#include "common/status_standalone.h"

#include <gtest/gtest.h>

namespace selene {
namespace {

TEST(StatusStandaloneTest, CodesAndMessages) {
  EXPECT_TRUE(OkStatus().ok());
  Status s = InvalidArgumentError("model.unet.base_width: 0 is below 1");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.ToString(), "INVALID_ARGUMENT: model.unet.base_width: 0 is below 1");
}

TEST(StatusStandaloneTest, StatusOrHoldsValueOrError) {
  StatusOr<std::string> value = std::string("ok");
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(*value, "ok");
  StatusOr<std::string> error = NotFoundError("no such job");
  EXPECT_EQ(error.status().code(), StatusCode::kNotFound);
  EXPECT_THROW(error.value(), std::logic_error);
  StatusOr<int> from_ok = OkStatus();  // absl treats this as a programming error too
  EXPECT_EQ(from_ok.status().code(), StatusCode::kInternal);
}

}  // namespace
}  // namespace selene
