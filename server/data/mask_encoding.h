// Binary segmentation masks come as clean binary images (0/255 or 0/1, one channel or three
// equal ones) or as the MOON data set's colour-coded ground truth (red sky, green small rocks,
// blue large rocks, black ground, with ~1000 distinct colours from compression noise). This file
// tells the two apart per file and turns either into a {0, 1} rock mask without exact colour
// matching.
#pragma once

#include <opencv2/core.hpp>

#include <cstdint>
#include <string>

#include "common/status.h"

namespace selene::data {

enum class MaskEncoding {
  kBinary,       // one channel, or channels equal up to compression noise
  kColourCoded,  // channels that clearly differ somewhere
};

std::string MaskEncodingName(MaskEncoding encoding);  // "binary", "colour_coded"

// Colour-coded when any pixel's channels spread by more than kColourSpread (a grey JPEG mask's
// noise stays well below it; the colour codes are far above it). 8- or 16-bit, 1, 3 or 4
// channels (alpha ignored).
inline constexpr int kColourSpread = 64;
MaskEncoding DetectMaskEncoding(const cv::Mat& mask);

// CV_8UC1 {0, 1}. Binary: on the first channel, nonzero when the mask's maximum is 1 (0/1 masks),
// else above half the depth's range (127 for 8 bit). Colour-coded: rock where green or blue is
// the strongest channel (ties count) and above half the range, so red sky and black ground are 0.
cv::Mat MaskToBinary(const cv::Mat& mask, MaskEncoding encoding);

// Detects and converts; InvalidArgument naming the depth or channel count it cannot read.
StatusOr<cv::Mat> DecodeBinaryMask(const cv::Mat& mask, MaskEncoding* encoding = nullptr);

// CV_8UC1 {0, 1}: 1 wherever any channel is nonzero (binary segmentation folders).
StatusOr<cv::Mat> NonzeroMask(const cv::Mat& mask);

// CV_32SC1 class ids from a label image holding ids as grey values (one channel, or three equal
// channels: the first is used). 8- or 16-bit. InvalidArgument when the channels differ (a colour
// mask needs a palette) or the depth is not 8/16-bit unsigned.
StatusOr<cv::Mat> LabelIds(const cv::Mat& mask);

}  // namespace selene::data
