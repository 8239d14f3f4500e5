#include "common/status.h"

#include <gtest/gtest.h>

namespace selene {
namespace {

StatusOr<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgumentError("odd value " + std::to_string(x));
  return x / 2;
}

Status QuarterInto(int x, int* out) {
  SELENE_ASSIGN_OR_RETURN(int half, Half(x));
  SELENE_ASSIGN_OR_RETURN(*out, Half(half));
  return OkStatus();
}

TEST(StatusTest, AssignOrReturnPropagatesTheFirstError) {
  int out = 0;
  EXPECT_TRUE(QuarterInto(8, &out).ok());
  EXPECT_EQ(out, 2);
  Status status = QuarterInto(6, &out);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "odd value 3");
}

TEST(StatusTest, ReturnIfErrorStopsAtTheError) {
  auto run = [](bool fail) -> Status {
    SELENE_RETURN_IF_ERROR(fail ? NotFoundError("missing") : OkStatus());
    return InternalError("reached the end");
  };
  EXPECT_EQ(run(true).code(), StatusCode::kNotFound);
  EXPECT_EQ(run(false).code(), StatusCode::kInternal);
}

}  // namespace
}  // namespace selene
