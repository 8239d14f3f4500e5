// Shared by the serving tests: a fake ModelCatalog, tiny trained-looking models written as job
// folders (best.pt with the resolved spec as metadata, optional class_names.txt), and images.
#pragma once

#include <opencv2/core.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/serving/model_catalog.h"

namespace selene::serving::testing {

class FakeCatalog : public ModelCatalog {
 public:
  void Add(const ServableModelRecord& record);
  // A job that exists but has not succeeded: Find answers FailedPrecondition.
  void AddUnfinished(const std::string& job_id, const std::string& state);

  StatusOr<ServableModelRecord> Find(const std::string& job_id) override;
  StatusOr<std::vector<ServableModelRecord>> ListServable() override;
  int find_calls() const;
  // Find() sleeps this long first, so concurrent callers overlap a load.
  void SetFindDelay(absl::Duration delay);

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, ServableModelRecord> records_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> unfinished_ ABSL_GUARDED_BY(mu_);
  int find_calls_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration find_delay_ ABSL_GUARDED_BY(mu_);
};

// Specs of tiny models (32x32 inputs) for each task.
std::string TinyBinarySpec();      // U-Net base 4, binary
std::string TinyMultiClassSpec();  // U-Net base 4, 3 shapes + background = 4 classes
std::string TinyClassifierSpec();  // classifier, 4 classes

// A per-process temporary folder (tests/testing/files.h) for the test models.
std::string TestRoot();

// Builds the spec's network with seeded random weights and BatchNorm statistics (so eval mode
// matters), saves <root>/<job_id>/best.pt and, when given, class_names.txt; returns the record.
ServableModelRecord MakeJob(const std::string& job_id, const std::string& spec_json,
                            int64_t finish_order, const std::vector<std::string>& class_names = {},
                            uint64_t seed = 1);

// One tiny model of each task into `catalog`: job-1 binary segmentation, job-2 multi-class
// segmentation (background, disc, square, triangle), job-3 classification (disc, square,
// triangle, star).
void AddOneModelPerTask(FakeCatalog& catalog);

// A deterministic RGB (or grey) image with smooth shapes and texture.
cv::Mat TestImage(int width, int height, int channels, int seed);
std::string EncodePng(const cv::Mat& image);
std::string EncodeJpeg(const cv::Mat& image);
cv::Mat DecodeGreyPng(const std::string& bytes);

}  // namespace selene::serving::testing
