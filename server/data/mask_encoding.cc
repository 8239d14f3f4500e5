#include "server/data/mask_encoding.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace selene::data {
namespace {

// The mask without an alpha channel, at its own depth.
cv::Mat DropAlpha(const cv::Mat& mask) {
  if (mask.channels() != 4) return mask;
  cv::Mat bgr;
  cv::cvtColor(mask, bgr, cv::COLOR_BGRA2BGR);
  return bgr;
}

Status CheckReadable(const cv::Mat& mask) {
  if (mask.depth() != CV_8U && mask.depth() != CV_16U) {
    return InvalidArgumentError(absl::StrCat("unsupported mask depth (", mask.elemSize1() * 8,
                                             "-bit, type ", mask.type(),
                                             "); masks must be 8- or 16-bit unsigned"));
  }
  const int c = mask.channels();
  if (c != 1 && c != 3 && c != 4) {
    return InvalidArgumentError(absl::StrCat("unsupported mask with ", c, " channels"));
  }
  return OkStatus();
}

// Largest per-pixel spread between channels (0 for one channel).
template <typename T>
int MaxSpread(const cv::Mat& bgr) {
  if (bgr.channels() == 1) return 0;
  int worst = 0;
  for (int y = 0; y < bgr.rows; ++y) {
    const T* p = bgr.ptr<T>(y);
    for (int x = 0; x < bgr.cols; ++x, p += 3) {
      const int hi = std::max({p[0], p[1], p[2]});
      const int lo = std::min({p[0], p[1], p[2]});
      worst = std::max(worst, hi - lo);
    }
  }
  return worst;
}

template <typename T>
cv::Mat ColourToBinary(const cv::Mat& bgr, int threshold) {
  cv::Mat out(bgr.rows, bgr.cols, CV_8UC1);
  for (int y = 0; y < bgr.rows; ++y) {
    const T* p = bgr.ptr<T>(y);
    uint8_t* o = out.ptr<uint8_t>(y);
    for (int x = 0; x < bgr.cols; ++x, p += 3) {
      const int b = p[0], g = p[1], r = p[2];
      const int strongest = std::max(g, b);
      o[x] = strongest > threshold && strongest >= r ? 1 : 0;
    }
  }
  return out;
}

cv::Mat FirstChannel(const cv::Mat& mask) {
  if (mask.channels() == 1) return mask;
  cv::Mat channel;
  cv::extractChannel(mask, channel, 0);
  return channel;
}

}  // namespace

std::string MaskEncodingName(MaskEncoding encoding) {
  return encoding == MaskEncoding::kBinary ? "binary" : "colour_coded";
}

MaskEncoding DetectMaskEncoding(const cv::Mat& mask) {
  const cv::Mat bgr = DropAlpha(mask);
  const int spread =
      bgr.depth() == CV_16U ? MaxSpread<uint16_t>(bgr) / 257 : MaxSpread<uint8_t>(bgr);
  return spread > kColourSpread ? MaskEncoding::kColourCoded : MaskEncoding::kBinary;
}

cv::Mat MaskToBinary(const cv::Mat& mask, MaskEncoding encoding) {
  const cv::Mat bgr = DropAlpha(mask);
  const bool wide = bgr.depth() == CV_16U;
  if (encoding == MaskEncoding::kColourCoded && bgr.channels() == 3) {
    return wide ? ColourToBinary<uint16_t>(bgr, 32767) : ColourToBinary<uint8_t>(bgr, 127);
  }
  const cv::Mat grey = FirstChannel(bgr);
  double max_value = 0.0;
  cv::minMaxLoc(grey, nullptr, &max_value);
  const double threshold = max_value <= 1.0 ? 0.0 : (wide && max_value > 255.0 ? 32767.0 : 127.0);
  cv::Mat out;
  // THRESH_BINARY keeps values strictly above the threshold.
  cv::threshold(grey, out, threshold, 1.0, cv::THRESH_BINARY);
  if (out.depth() != CV_8U) out.convertTo(out, CV_8U);
  return out;
}

StatusOr<cv::Mat> DecodeBinaryMask(const cv::Mat& mask, MaskEncoding* encoding) {
  SELENE_RETURN_IF_ERROR(CheckReadable(mask));
  const MaskEncoding detected = DetectMaskEncoding(mask);
  if (encoding) *encoding = detected;
  return MaskToBinary(mask, detected);
}

StatusOr<cv::Mat> NonzeroMask(const cv::Mat& mask) {
  SELENE_RETURN_IF_ERROR(CheckReadable(mask));
  const cv::Mat bgr = DropAlpha(mask);
  cv::Mat any = FirstChannel(bgr);
  if (bgr.channels() == 3) {
    cv::Mat channels[3];
    cv::split(bgr, channels);
    any = cv::max(cv::max(channels[0], channels[1]), channels[2]);
  }
  cv::Mat out;
  cv::threshold(any, out, 0.0, 1.0, cv::THRESH_BINARY);
  if (out.depth() != CV_8U) out.convertTo(out, CV_8U);
  return out;
}

StatusOr<cv::Mat> LabelIds(const cv::Mat& mask) {
  SELENE_RETURN_IF_ERROR(CheckReadable(mask));
  const cv::Mat bgr = DropAlpha(mask);
  if (bgr.channels() == 3) {
    const int spread = bgr.depth() == CV_16U ? MaxSpread<uint16_t>(bgr) : MaxSpread<uint8_t>(bgr);
    if (spread != 0) {
      return InvalidArgumentError(
          "colour label image (channels differ) but the folder has no class_dict.csv to map "
          "colours to class ids");
    }
  }
  cv::Mat ids;
  FirstChannel(bgr).convertTo(ids, CV_32S);
  return ids;
}

}  // namespace selene::data
