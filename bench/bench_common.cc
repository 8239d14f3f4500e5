#include "bench/bench_common.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>

namespace selene::bench {

cv::Mat TestImage(int side) {
  cv::Mat image(side, side, CV_8UC3);
  cv::RNG rng(7);
  for (int y = 0; y < side; ++y) {
    for (int x = 0; x < side; ++x) {
      image.at<cv::Vec3b>(y, x) =
          cv::Vec3b(static_cast<uchar>(255 * x / (side - 1)),
                    static_cast<uchar>(255 * y / (side - 1)), static_cast<uchar>((x * y) % 256));
    }
  }
  for (int i = 0; i < 6; ++i) {
    cv::circle(
        image, cv::Point(rng.uniform(0, side), rng.uniform(0, side)), rng.uniform(3, side / 4),
        cv::Scalar(rng.uniform(0, 256), rng.uniform(0, 256), rng.uniform(0, 256)), cv::FILLED);
  }
  cv::Mat noise(image.size(), CV_8UC3);
  rng.fill(noise, cv::RNG::UNIFORM, 0, 24);
  image += noise;
  return image;
}

double Percentile(const std::vector<double>& sorted_ms, double q) {
  if (sorted_ms.empty()) return 0.0;
  return sorted_ms[std::min(sorted_ms.size() - 1, static_cast<size_t>(q * sorted_ms.size()))];
}

}  // namespace selene::bench
