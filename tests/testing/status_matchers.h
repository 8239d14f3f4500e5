// Assertions on selene's Status and StatusOr<T> (common/status.h):
//   EXPECT_OK(store->Submit(spec));  ASSERT_OK(status) << "context";
//   EXPECT_THAT(result, StatusIs(StatusCode::kNotFound));
//   EXPECT_THAT(result, StatusIs(StatusCode::kInvalidArgument, HasSubstr("epochs")));
// A failure prints the status (code and message), which a bare `EXPECT_TRUE(s.ok())` does not.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <utility>

#include "common/status.h"

namespace selene::testing {
namespace internal {

inline const Status& GetStatus(const Status& status) { return status; }
template <typename T>
const Status& GetStatus(const StatusOr<T>& status_or) {
  return status_or.status();
}

// For EXPECT_PRED_FORMAT1: success when `value` is OK, else a message naming the expression.
template <typename T>
::testing::AssertionResult IsOkFormat(const char* expression, const T& value) {
  const Status& status = GetStatus(value);
  if (status.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << expression << " is not OK: " << status;
}

class StatusIsMatcher {
 public:
  StatusIsMatcher(StatusCode code, ::testing::Matcher<const std::string&> message)
      : code_(code), message_(std::move(message)) {}

  template <typename T>
  bool MatchAndExplain(const T& value, ::testing::MatchResultListener* listener) const {
    const Status& status = GetStatus(value);
    *listener << "whose status is " << status;
    if (status.code() != code_) return false;
    ::testing::StringMatchResultListener message_listener;
    const bool matched = message_.MatchAndExplain(std::string(status.message()), &message_listener);
    if (!matched && !message_listener.str().empty()) *listener << ", " << message_listener.str();
    return matched;
  }
  void DescribeTo(std::ostream* os) const {
    *os << "has status code " << absl::StatusCodeToString(code_) << " and a message that ";
    message_.DescribeTo(os);
  }
  void DescribeNegationTo(std::ostream* os) const {
    *os << "does not have status code " << absl::StatusCodeToString(code_)
        << " or has a message that ";
    message_.DescribeNegationTo(os);
  }

 private:
  StatusCode code_;
  ::testing::Matcher<const std::string&> message_;
};

}  // namespace internal

// Matches a Status or StatusOr<T> whose code is `code` and whose message matches `message`
// (any message when left out).
inline ::testing::PolymorphicMatcher<internal::StatusIsMatcher> StatusIs(
    StatusCode code, ::testing::Matcher<const std::string&> message = ::testing::_) {
  return ::testing::MakePolymorphicMatcher(internal::StatusIsMatcher(code, std::move(message)));
}

}  // namespace selene::testing

// Passes when `expr` (a Status or StatusOr<T>) is OK; a failure prints the status. Evaluates
// `expr` once; more context can be streamed in with <<.
#define EXPECT_OK(expr) EXPECT_PRED_FORMAT1(::selene::testing::internal::IsOkFormat, expr)
#define ASSERT_OK(expr) ASSERT_PRED_FORMAT1(::selene::testing::internal::IsOkFormat, expr)
