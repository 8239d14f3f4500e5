// Shared by the validation files of spec/: the error list and the checks of each part of a spec.
// Each check takes the spec with its defaults resolved and the class count the data will have
// (0 when only the data set can tell), and adds "<path>: <reason>" for every problem.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "common/status.h"
#include "selene/v1/job_spec.pb.h"

namespace selene::spec::internal {

// Written so that NaN fails every range.
// that NaN fails every range.

class Errors {
 public:
  // A spec with 100000 repeated entries can have as many problems; past the first few dozen
  // they only make the message too long to send back.
  static constexpr size_t kMaxListed = 50;

  void Add(absl::string_view path, absl::string_view reason) {
    if (errors_.size() < kMaxListed) {
      errors_.push_back(absl::StrCat(path, ": ", reason));
    } else {
      ++unlisted_;
    }
  }
  void AtLeast(absl::string_view path, double value, double low) {
    if (!(value >= low)) Add(path, absl::StrCat(value, " must be >= ", low));
  }
  void Positive(absl::string_view path, double value) {
    if (!(value > 0)) Add(path, absl::StrCat(value, " must be > 0"));
  }
  // Interval [low, high], with open ends when asked: "must be in (0, 1)".
  void InRange(absl::string_view path, double value, double low, double high, bool low_open,
               bool high_open) {
    const bool ok =
        (low_open ? value > low : value >= low) && (high_open ? value < high : value <= high);
    if (!ok) {
      Add(path, absl::StrCat(value, " must be in ", low_open ? "(" : "[", low, ", ", high,
                             high_open ? ")" : "]"));
    }
  }
  // Integer bounds, printed as integers ("1000000000000 must be <= 100000").
  void IntInRange(absl::string_view path, int64_t value, int64_t low, int64_t high) {
    if (value < low) Add(path, absl::StrCat(value, " must be >= ", low));
    if (value > high) Add(path, absl::StrCat(value, " must be <= ", high));
  }
  bool empty() const { return errors_.empty(); }
  Status ToStatus() const {
    if (errors_.empty()) return OkStatus();
    return InvalidArgumentError(
        absl::StrCat(absl::StrJoin(errors_, "; "),
                     unlisted_ > 0 ? absl::StrCat("; and ", unlisted_, " more") : ""));
  }

 private:
  std::vector<std::string> errors_;
  int64_t unlisted_ = 0;
};

void ValidateModel(const v1::JobSpec& spec, int64_t classes, Errors& errors);
void ValidateData(const v1::JobSpec& spec, int64_t classes, Errors& errors);
void ValidateTraining(const v1::JobSpec& spec, int64_t classes, Errors& errors);

// The model's input channels, or 0 when it has no family.
int64_t ModelInChannels(const v1::ModelSpec& model);

}  // namespace selene::spec::internal
