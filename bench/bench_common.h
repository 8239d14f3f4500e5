// What the serving benchmarks share, so selene-serving-bench (in process) and selene-load (over
// gRPC) time exactly the same input and summarise latencies the same way.
#pragma once

#include <opencv2/core.hpp>

#include <vector>

namespace selene::bench {

// A deterministic side x side RGB test image: gradients, discs and noise, so that it is neither
// trivial to encode nor to segment.
cv::Mat TestImage(int side);

// The q-quantile (0..1) of `sorted_ms`, nearest rank; 0 when empty.
double Percentile(const std::vector<double>& sorted_ms, double q);

}  // namespace selene::bench
