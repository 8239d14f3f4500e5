#include "server/report/plot_canvas.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <exception>

#include "absl/strings/str_format.h"
#include "common/durable_file.h"

namespace selene::report::plot {
namespace {

constexpr int kFontFace = cv::FONT_HERSHEY_SIMPLEX;
constexpr int kShift = 4;  // sub-pixel bits for anti-aliased lines
constexpr double kOne = 1 << kShift;

cv::Point Fixed(cv::Point2d p) {
  return {static_cast<int>(std::lround(p.x * kOne)), static_cast<int>(std::lround(p.y * kOne))};
}

}  // namespace

const std::vector<cv::Scalar>& LineColours() {
  static const std::vector<cv::Scalar>* const kColours = new std::vector<cv::Scalar>{
      {180, 119, 31}, {14, 127, 255},  {44, 160, 44},  {40, 39, 214},  {189, 103, 148},
      {75, 86, 140},  {194, 119, 227}, {34, 189, 188}, {207, 190, 23},
  };
  return *kColours;
}

cv::Size TextSize(const std::string& text, Font font) {
  int baseline = 0;
  cv::Size size = cv::getTextSize(text, kFontFace, font.scale, font.thickness, &baseline);
  return {size.width, size.height + baseline};
}

void PutText(cv::Mat& image, const std::string& text, cv::Point anchor, Font font,
             const cv::Scalar& colour, HAlign h, VAlign v) {
  int baseline = 0;
  const cv::Size size = cv::getTextSize(text, kFontFace, font.scale, font.thickness, &baseline);
  int x = anchor.x;
  if (h == HAlign::kCenter) x -= size.width / 2;
  if (h == HAlign::kRight) x -= size.width;
  // putText's origin is the baseline's left end; the box spans [y - height, y + baseline].
  int y = anchor.y + size.height;
  if (v == VAlign::kCenter) y = anchor.y + size.height / 2;  // centre of the capitals
  if (v == VAlign::kBottom) y = anchor.y - baseline;
  cv::putText(image, text, {x, y}, kFontFace, font.scale, colour, font.thickness, cv::LINE_AA);
}

void PutVerticalText(cv::Mat& image, const std::string& text, cv::Point centre, Font font,
                     const cv::Scalar& colour, bool align_end) {
  const cv::Size size = TextSize(text, font);
  cv::Mat horizontal(size.height + 4, size.width + 4, image.type(), kWhite);
  PutText(horizontal, text, {2, 2}, font, colour);
  cv::Mat vertical;
  cv::rotate(horizontal, vertical, cv::ROTATE_90_COUNTERCLOCKWISE);
  const int top = align_end ? centre.y : centre.y - vertical.rows / 2;
  cv::Rect target(centre.x - vertical.cols / 2, top, vertical.cols, vertical.rows);
  const cv::Rect clipped = target & cv::Rect(0, 0, image.cols, image.rows);
  if (clipped.empty()) return;
  const cv::Rect source(clipped.x - target.x, clipped.y - target.y, clipped.width, clipped.height);
  cv::Mat roi = image(clipped);
  cv::min(roi, vertical(source), roi);
}

std::string Ellipsize(const std::string& text, Font font, int max_width) {
  if (TextSize(text, font).width <= max_width) return text;
  std::string cut = text;
  while (!cut.empty() && TextSize(cut + "..", font).width > max_width) cut.pop_back();
  return cut + "..";
}

void DrawDashedLine(cv::Mat& image, cv::Point2d from, cv::Point2d to, const cv::Scalar& colour,
                    int thickness, double dash, double gap) {
  const double length = std::hypot(to.x - from.x, to.y - from.y);
  if (length <= 0.0) return;
  const cv::Point2d unit = (to - from) / length;
  for (double start = 0.0; start < length; start += dash + gap) {
    const double end = std::min(start + dash, length);
    cv::line(image, Fixed(from + unit * start), Fixed(from + unit * end), colour, thickness,
             cv::LINE_AA, kShift);
  }
}

void DrawPolyline(cv::Mat& image, const std::vector<cv::Point2d>& points, const cv::Scalar& colour,
                  int thickness, bool dashed) {
  if (points.size() < 2) return;
  if (!dashed) {
    std::vector<cv::Point> fixed;
    fixed.reserve(points.size());
    for (const cv::Point2d& p : points) fixed.push_back(Fixed(p));
    cv::polylines(image, fixed, /*isClosed=*/false, colour, thickness, cv::LINE_AA, kShift);
    return;
  }
  // The dash phase carries over vertices, so short segments (many epochs) still look dashed.
  constexpr double kDash = 10.0, kGap = 6.0;
  double phase = 0.0;  // distance into the current dash+gap period
  for (size_t i = 1; i < points.size(); ++i) {
    const cv::Point2d from = points[i - 1], to = points[i];
    const double length = std::hypot(to.x - from.x, to.y - from.y);
    if (length <= 0.0) continue;
    const cv::Point2d unit = (to - from) / length;
    double at = 0.0;
    while (at < length) {
      const bool in_dash = phase < kDash;
      const double run = std::min(length - at, (in_dash ? kDash : kDash + kGap) - phase);
      if (in_dash) {
        cv::line(image, Fixed(from + unit * at), Fixed(from + unit * (at + run)), colour, thickness,
                 cv::LINE_AA, kShift);
      }
      at += run;
      phase = std::fmod(phase + run, kDash + kGap);
    }
  }
}

Ticks NiceTicks(double lo, double hi, int max_ticks) {
  Ticks ticks;
  if (!(hi > lo) || max_ticks < 2) {
    ticks.values = {lo};
    return ticks;
  }
  const double raw = (hi - lo) / (max_ticks - 1);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = 10.0 * magnitude;
  for (double factor : {1.0, 2.0, 2.5, 5.0}) {
    if (factor * magnitude >= raw * (1 - 1e-9)) {
      step = factor * magnitude;
      break;
    }
  }
  ticks.step = step;
  const double first = std::ceil(lo / step - 1e-9) * step;
  for (double v = first; v <= hi + step * 1e-9; v += step) {
    ticks.values.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  }
  return ticks;
}

std::string TickLabel(double value, double step) {
  int decimals = 0;
  while (decimals < 8 && std::abs(step * std::pow(10.0, decimals) -
                                  std::round(step * std::pow(10.0, decimals))) > 1e-6) {
    ++decimals;
  }
  return absl::StrFormat("%.*f", decimals, value);
}

Status WritePng(const std::string& path, const cv::Mat& image) {
  // Encoded in memory and written by WriteFileDurably: cv::imwrite reports a full disk as a bare
  // false and can leave half a file behind.
  std::vector<uchar> png;
  try {
    if (!cv::imencode(".png", image, png)) return InternalError("cannot encode PNG " + path);
  } catch (const cv::Exception& e) {
    return InternalError("cannot encode PNG " + path + ": " + e.what());
  } catch (const std::exception& e) {
    return InternalError("cannot encode PNG " + path + ": " + e.what());
  }
  return WriteFileDurably(path,
                          std::string_view(reinterpret_cast<const char*>(png.data()), png.size()));
}

}  // namespace selene::report::plot
