// Drawing primitives shared by the report's plots (curves, confusion matrix, sample grids):
// anchored and rotated text, dashed polylines, "nice" axis ticks, a colour palette, and PNG
// writing that turns OpenCV's exceptions into a status. Internal to server/report.
#pragma once

#include <opencv2/core.hpp>

#include <string>
#include <vector>

#include "common/status.h"

namespace selene::report::plot {

inline const cv::Scalar kWhite(255, 255, 255);
inline const cv::Scalar kBlack(0, 0, 0);
inline const cv::Scalar kDarkGrey(60, 60, 60);
inline const cv::Scalar kGrey(150, 150, 150);
inline const cv::Scalar kLightGrey(225, 225, 225);

// Distinct line colours (BGR), matplotlib's first "tab10" entries: blue, orange, green, red,
// purple, brown, pink, olive, cyan.
const std::vector<cv::Scalar>& LineColours();

enum class HAlign { kLeft, kCenter, kRight };
enum class VAlign { kTop, kCenter, kBottom };

struct Font {
  double scale = 0.5;
  int thickness = 1;
};

// Size of `text` in pixels including the part below the baseline.
cv::Size TextSize(const std::string& text, Font font);

// Anti-aliased FONT_HERSHEY_SIMPLEX text whose box is aligned on `anchor`.
void PutText(cv::Mat& image, const std::string& text, cv::Point anchor, Font font,
             const cv::Scalar& colour, HAlign h = HAlign::kLeft, VAlign v = VAlign::kTop);

// Text turned 90 degrees counter-clockwise (read bottom to top), centred on `centre`; drawn
// by darkening, so it suits a light background. `align_end` = true puts the end of the text
// (its last character) at centre.y instead of centring it, for labels hanging below an axis.
void PutVerticalText(cv::Mat& image, const std::string& text, cv::Point centre, Font font,
                     const cv::Scalar& colour, bool align_end = false);

// `text` cut (with "..") to fit in `max_width` pixels.
std::string Ellipsize(const std::string& text, Font font, int max_width);

// A polyline through `points`, solid or dashed (the dash pattern runs on across vertices).
void DrawPolyline(cv::Mat& image, const std::vector<cv::Point2d>& points, const cv::Scalar& colour,
                  int thickness, bool dashed);
void DrawDashedLine(cv::Mat& image, cv::Point2d from, cv::Point2d to, const cv::Scalar& colour,
                    int thickness, double dash = 10.0, double gap = 6.0);

// Axis ticks: a step of 1, 2, 2.5 or 5 times a power of ten giving at most `max_ticks` ticks
// over [lo, hi], and the tick values inside it.
struct Ticks {
  double step = 1.0;
  std::vector<double> values;
};
Ticks NiceTicks(double lo, double hi, int max_ticks);
// A tick value with as many decimals as the step needs ("0.25", "2", "0.005").
std::string TickLabel(double value, double step);

// Writes `image` as PNG; errors name the path.
Status WritePng(const std::string& path, const cv::Mat& image);

}  // namespace selene::report::plot
