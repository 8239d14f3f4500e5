// A minimal absl::Status look-alike for the engine-only build, which links LibTorch alone.
// Only what the engine uses: codes, message, ok(), the *Error constructors and StatusOr.
#pragma once

#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace selene {

enum class StatusCode {
  kOk = 0,
  kCancelled = 1,
  kInvalidArgument = 3,
  kNotFound = 5,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kOutOfRange = 11,
  kInternal = 13,
};

class Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string_view message) : code_(code), message_(message) {}

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  std::string_view message() const { return message_; }
  std::string ToString() const { return ok() ? "OK" : CodeName() + ": " + message_; }

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }
  friend std::ostream& operator<<(std::ostream& os, const Status& s) { return os << s.ToString(); }

 private:
  std::string CodeName() const {
    switch (code_) {
      case StatusCode::kOk:
        return "OK";
      case StatusCode::kCancelled:
        return "CANCELLED";
      case StatusCode::kInvalidArgument:
        return "INVALID_ARGUMENT";
      case StatusCode::kNotFound:
        return "NOT_FOUND";
      case StatusCode::kResourceExhausted:
        return "RESOURCE_EXHAUSTED";
      case StatusCode::kFailedPrecondition:
        return "FAILED_PRECONDITION";
      case StatusCode::kOutOfRange:
        return "OUT_OF_RANGE";
      case StatusCode::kInternal:
        return "INTERNAL";
    }
    return "UNKNOWN";
  }

  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status OkStatus() { return Status(); }
inline Status CancelledError(std::string_view m) { return Status(StatusCode::kCancelled, m); }
inline Status InvalidArgumentError(std::string_view m) {
  return Status(StatusCode::kInvalidArgument, m);
}
inline Status NotFoundError(std::string_view m) { return Status(StatusCode::kNotFound, m); }
inline Status ResourceExhaustedError(std::string_view m) {
  return Status(StatusCode::kResourceExhausted, m);
}
inline Status FailedPreconditionError(std::string_view m) {
  return Status(StatusCode::kFailedPrecondition, m);
}
inline Status OutOfRangeError(std::string_view m) { return Status(StatusCode::kOutOfRange, m); }
inline Status InternalError(std::string_view m) { return Status(StatusCode::kInternal, m); }

template <typename T>
class StatusOr {
 public:
  StatusOr(Status status) : status_(std::move(status)) {  // NOLINT: implicit like absl
    if (status_.ok()) status_ = InternalError("StatusOr constructed from an OK status");
  }
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit like absl

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }

  T& value() & { return CheckedValue(); }
  const T& value() const& { return const_cast<StatusOr*>(this)->CheckedValue(); }
  T&& value() && { return std::move(CheckedValue()); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  T& CheckedValue() {
    if (!value_) throw std::logic_error("StatusOr has no value: " + status_.ToString());
    return *value_;
  }

  Status status_;
  std::optional<T> value_;
};

}  // namespace selene
