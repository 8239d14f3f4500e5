#include "server/serving/segmentation_maps.h"

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace selene::serving {
namespace {

// Source positions of a bilinear resize along one axis, with half-pixel centres and clamped
// edges.
struct LinearTaps {
  std::vector<int> low;
  std::vector<int> high;
  std::vector<float> weight;  // of `high`
};

LinearTaps Taps(int from, int to) {
  LinearTaps taps;
  const double scale = static_cast<double>(from) / to;
  for (int i = 0; i < to; ++i) {
    const double source = std::max(0.0, (i + 0.5) * scale - 0.5);
    const int low = std::min(static_cast<int>(source), from - 1);
    taps.low.push_back(low);
    taps.high.push_back(std::min(low + 1, from - 1));
    taps.weight.push_back(static_cast<float>(source - low));
  }
  return taps;
}

// The logits resized from the model's S x S to the input's W x H, one output row at a time: each
// row of K class logits is made, used and dropped (12 classes at 4096x4096 would be 800 MB).
class LogitRows {
 public:
  LogitRows(const ModelOutput& output, cv::Size size)
      : classes_(static_cast<int>(output.shape[0])),
        side_(static_cast<int>(output.shape[1])),
        values_(output.values.data()),
        rows_(Taps(side_, size.height)),
        columns_(Taps(side_, size.width)),
        vertical_(static_cast<size_t>(classes_) * side_),
        row_(static_cast<size_t>(classes_) * size.width) {}

  int classes() const { return classes_; }

  // Row y of the resized logits, class-major: [k * width + x].
  const float* Row(int y) {
    const int width = static_cast<int>(columns_.low.size());
    const float wy = rows_.weight[y];
    for (int k = 0; k < classes_; ++k) {
      const float* plane = values_ + static_cast<size_t>(k) * side_ * side_;
      const float* top = plane + static_cast<size_t>(rows_.low[y]) * side_;
      const float* bottom = plane + static_cast<size_t>(rows_.high[y]) * side_;
      float* v = vertical_.data() + static_cast<size_t>(k) * side_;
      for (int x = 0; x < side_; ++x) v[x] = top[x] + wy * (bottom[x] - top[x]);
      float* out = row_.data() + static_cast<size_t>(k) * width;
      for (int x = 0; x < width; ++x) {
        const float left = v[columns_.low[x]];
        out[x] = left + columns_.weight[x] * (v[columns_.high[x]] - left);
      }
    }
    return row_.data();
  }

 private:
  const int classes_;
  const int side_;
  const float* values_;
  const LinearTaps rows_;
  const LinearTaps columns_;
  std::vector<float> vertical_;
  std::vector<float> row_;
};

uint8_t ToByte(double probability) {
  return static_cast<uint8_t>(std::lround(std::clamp(probability, 0.0, 1.0) * 255.0));
}

// Row y of a [K, H, W] plane stack.
float* PlaneRow(std::vector<float>& planes, int k, int y, cv::Size size) {
  return planes.data() + (static_cast<size_t>(k) * size.height + y) * size.width;
}

}  // namespace

SegmentationMaps MakeSegmentationMaps(const ModelOutput& output, cv::Size size,
                                      const SegmentationMapRequest& request) {
  LogitRows logits(output, size);
  const int classes = logits.classes();
  const size_t width = static_cast<size_t>(size.width);
  const size_t planes = static_cast<size_t>(classes) * size.height * width;
  SegmentationMaps maps;
  maps.mask.create(size, CV_8UC1);
  maps.class_pixels.assign(request.binary ? 2 : static_cast<size_t>(classes), 0);
  if (request.probability_bytes) maps.probability_bytes.create(size, CV_8UC1);
  if (request.probabilities) maps.probabilities.resize(planes);
  if (request.logits) maps.logits.resize(planes);
  // sigmoid(x) >= t  <=>  x >= log(t / (1 - t)): no exp per pixel for the mask.
  const float logit_threshold =
      static_cast<float>(std::log(request.threshold / (1.0 - request.threshold)));
  std::vector<double> exps(static_cast<size_t>(classes));

  for (int y = 0; y < size.height; ++y) {
    const float* row = logits.Row(y);
    uint8_t* out = maps.mask.ptr<uint8_t>(y);
    uint8_t* bytes = request.probability_bytes ? maps.probability_bytes.ptr<uint8_t>(y) : nullptr;
    if (request.logits) {
      for (int k = 0; k < classes; ++k) {
        std::copy(row + k * width, row + (k + 1) * width, PlaneRow(maps.logits, k, y, size));
      }
    }
    float* probability = request.probabilities ? PlaneRow(maps.probabilities, 0, y, size) : nullptr;
    for (size_t x = 0; x < width; ++x) {
      if (request.binary) {
        const bool on = row[x] >= logit_threshold;
        out[x] = on ? 1 : 0;
        ++maps.class_pixels[on ? 1 : 0];
        if (bytes != nullptr || probability != nullptr) {
          const double p = 1.0 / (1.0 + std::exp(-double{row[x]}));
          if (bytes != nullptr) bytes[x] = ToByte(p);
          if (probability != nullptr) probability[x] = static_cast<float>(p);
        }
        continue;
      }
      int best = 0;
      float best_logit = row[x];
      for (int k = 1; k < classes; ++k) {
        const float logit = row[k * width + x];
        if (logit > best_logit) {
          best_logit = logit;
          best = k;
        }
      }
      out[x] = static_cast<uint8_t>(best);
      ++maps.class_pixels[static_cast<size_t>(best)];
      if (bytes != nullptr || probability != nullptr) {
        // softmax_k = exp(l_k - l_best) / sum_j exp(l_j - l_best).
        double sum = 0.0;
        for (int k = 0; k < classes; ++k) {
          exps[static_cast<size_t>(k)] = std::exp(double{row[k * width + x]} - best_logit);
          sum += exps[static_cast<size_t>(k)];
        }
        if (bytes != nullptr) bytes[x] = ToByte(1.0 / sum);
        if (probability != nullptr) {
          for (int k = 0; k < classes; ++k) {
            PlaneRow(maps.probabilities, k, y, size)[x] =
                static_cast<float>(exps[static_cast<size_t>(k)] / sum);
          }
        }
      }
    }
  }
  return maps;
}

}  // namespace selene::serving
