#include "tests/server/serving/serving_test_models.h"

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/run_folder.h"
#include "server/train/checkpoint.h"
#include "spec/json_io.h"
#include "spec/network_builder.h"
#include "spec/resolved_job_spec.h"
#include "tests/testing/files.h"

namespace selene::serving::testing {

void FakeCatalog::Add(const ServableModelRecord& record) {
  absl::MutexLock lock(&mu_);
  unfinished_.erase(record.job_id);
  records_[record.job_id] = record;
}

void FakeCatalog::AddUnfinished(const std::string& job_id, const std::string& state) {
  absl::MutexLock lock(&mu_);
  unfinished_[job_id] = state;
}

void FakeCatalog::SetFindDelay(absl::Duration delay) {
  absl::MutexLock lock(&mu_);
  find_delay_ = delay;
}

StatusOr<ServableModelRecord> FakeCatalog::Find(const std::string& job_id) {
  absl::Duration delay;
  {
    absl::MutexLock lock(&mu_);
    delay = find_delay_;
  }
  absl::SleepFor(delay);
  absl::MutexLock lock(&mu_);
  ++find_calls_;
  if (auto it = records_.find(job_id); it != records_.end()) return it->second;
  if (auto it = unfinished_.find(job_id); it != unfinished_.end()) {
    return FailedPreconditionError(
        absl::StrCat(job_id, " is ", it->second, "; its model is servable once it succeeds"));
  }
  return NotFoundError(absl::StrCat("no job ", job_id));
}

StatusOr<std::vector<ServableModelRecord>> FakeCatalog::ListServable() {
  absl::MutexLock lock(&mu_);
  std::vector<ServableModelRecord> out;
  for (const auto& [id, record] : records_) out.push_back(record);
  return out;
}

int FakeCatalog::find_calls() const {
  absl::MutexLock lock(&mu_);
  return find_calls_;
}

std::string TinyBinarySpec() {
  return R"json({"name": "tiny-binary", "task": "binary_segmentation",
    "model": {"unet": {"base_width": 4}},
    "data": {"kind": "synthetic_moon", "image_size": 32}})json";
}

std::string TinyMultiClassSpec() {
  return R"json({"name": "tiny-multiclass", "task": "multiclass_segmentation",
    "model": {"unet": {"base_width": 4}},
    "data": {"kind": "synthetic_shapes_segmentation", "num_classes": 3, "image_size": 32,
             "normalize_mean": [0.4, 0.5, 0.6], "normalize_std": [0.2, 0.3, 0.25]}})json";
}

std::string TinyClassifierSpec() {
  return R"json({"name": "tiny-classifier", "task": "classification",
    "model": {"classifier": {"stem_width": 8, "stage_widths": [8, 8, 16, 16],
                             "stage_blocks": [1, 1, 1, 1]}},
    "data": {"kind": "synthetic_shapes", "num_classes": 4, "image_size": 32}})json";
}

std::string TestRoot() {
  static const std::string root = ::selene::testing::MakeTempDir("selene-serving-models");
  return root;
}

ServableModelRecord MakeJob(const std::string& job_id, const std::string& spec_json,
                            int64_t finish_order, const std::vector<std::string>& class_names,
                            uint64_t seed) {
  StatusOr<v1::JobSpec> spec = spec::ParseJobSpecJson(spec_json);
  EXPECT_TRUE(spec.ok()) << spec.status();
  StatusOr<spec::ResolvedJobSpec> resolved = spec::ResolvedJobSpec::Resolve(*spec);
  EXPECT_TRUE(resolved.ok()) << resolved.status();
  torch::manual_seed(seed);
  StatusOr<models::Network> network = spec::BuildNetwork(*resolved);
  EXPECT_TRUE(network.ok()) << network.status();
  {
    torch::NoGradGuard no_grad;
    for (auto& buffer : (*network)->named_buffers()) {
      if (absl::EndsWith(buffer.key(), "running_mean")) {
        buffer.value().normal_(0.0, 0.2);
      } else if (absl::EndsWith(buffer.key(), "running_var")) {
        buffer.value().uniform_(0.5, 1.5);
      }
    }
  }
  // Centre each output's logits on 0 over test images, so random models give masks with both
  // values and classes that all occur: comparisons of masks then mean something.
  {
    torch::NoGradGuard no_grad;
    (*network)->eval();
    const int64_t side = resolved->proto().data().image_size();
    const models::NetworkSpec& described = resolved->network();
    const int64_t channels = described.family == models::Family::kClassifier
                                 ? described.classifier.in_channels
                                 : described.unet.in_channels;
    std::vector<torch::Tensor> images;
    for (int i = 0; i < 8; ++i) {
      cv::Mat image = TestImage(static_cast<int>(side), static_cast<int>(side),
                                static_cast<int>(channels), 100 + i);
      images.push_back(torch::from_blob(image.data, {side, side, channels}, torch::kUInt8)
                           .permute({2, 0, 1})
                           .to(torch::kFloat)
                           .clone());
    }
    const torch::Tensor x = (torch::stack(images) / 255.0 - 0.5) / 0.25;
    const torch::Tensor logits = (*network)->forward(x);
    const torch::Tensor per_output = logits.transpose(0, 1).reshape({logits.size(1), -1});
    for (auto& parameter : (*network)->named_parameters()) {
      if (parameter.key() == "head.bias") {
        parameter.value().sub_(std::get<0>(per_output.median(1)));
      }
    }
  }
  const std::filesystem::path dir = std::filesystem::path(TestRoot()) / job_id;
  std::filesystem::create_directories(dir);
  const RunFolder folder(dir.string());
  const std::string path = folder.best_checkpoint();
  const Status saved =
      train::SaveCheckpoint(path, **network, spec::JobSpecToJson(resolved->proto(), false));
  EXPECT_TRUE(saved.ok()) << saved;
  std::filesystem::remove(folder.class_names());
  if (!class_names.empty()) {
    std::ofstream(folder.class_names()) << absl::StrJoin(class_names, "\n") << "\n";
  }
  ServableModelRecord record;
  record.job_id = job_id;
  record.name = resolved->proto().name();
  record.checkpoint_path = path;
  record.spec = resolved->proto();
  record.finish_order = finish_order;
  return record;
}

void AddOneModelPerTask(FakeCatalog& catalog) {
  catalog.Add(MakeJob("job-1", TinyBinarySpec(), 1));
  catalog.Add(
      MakeJob("job-2", TinyMultiClassSpec(), 2, {"background", "disc", "square", "triangle"}));
  catalog.Add(MakeJob("job-3", TinyClassifierSpec(), 3, {"disc", "square", "triangle", "star"}));
}

cv::Mat TestImage(int width, int height, int channels, int seed) {
  cv::Mat image(height, width, CV_8UC3);
  cv::RNG rng(static_cast<uint64_t>(seed) * 7919 + 17);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      image.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<uchar>(255 * x / std::max(1, width - 1)),
                                            static_cast<uchar>(255 * y / std::max(1, height - 1)),
                                            static_cast<uchar>((x * y + seed * 31) % 256));
    }
  }
  for (int i = 0; i < 4; ++i) {
    const cv::Point centre(rng.uniform(0, width), rng.uniform(0, height));
    const int radius = rng.uniform(2, std::max(3, std::min(width, height) / 3));
    cv::circle(image, centre, radius,
               cv::Scalar(rng.uniform(0, 256), rng.uniform(0, 256), rng.uniform(0, 256)),
               cv::FILLED);
  }
  cv::Mat noise(image.size(), CV_8UC3);
  rng.fill(noise, cv::RNG::UNIFORM, 0, 24);
  image += noise;
  if (channels == 1) {
    cv::Mat grey;
    cv::cvtColor(image, grey, cv::COLOR_BGR2GRAY);
    return grey;
  }
  return image;
}

std::string EncodePng(const cv::Mat& image) {
  std::vector<uchar> bytes;
  EXPECT_TRUE(cv::imencode(".png", image, bytes));
  return std::string(bytes.begin(), bytes.end());
}

std::string EncodeJpeg(const cv::Mat& image) {
  std::vector<uchar> bytes;
  EXPECT_TRUE(cv::imencode(".jpg", image, bytes, {cv::IMWRITE_JPEG_QUALITY, 95}));
  return std::string(bytes.begin(), bytes.end());
}

cv::Mat DecodeGreyPng(const std::string& bytes) {
  const std::vector<uchar> buffer(bytes.begin(), bytes.end());
  return cv::imdecode(buffer, cv::IMREAD_UNCHANGED);
}

}  // namespace selene::serving::testing
