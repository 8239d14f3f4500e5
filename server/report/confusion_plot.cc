#include "server/report/confusion_plot.h"

#include <torch/torch.h>

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <exception>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/report/plot_canvas.h"

namespace selene::report {
namespace {

using plot::Font;
using plot::HAlign;
using plot::VAlign;

// Margins depend on K alone (whether names are shown), so a cell's place does too: room on the
// left for class names and the axis title, below for the rotated names and the axis title,
// right for the colour bar.
constexpr int64_t kMaxNamedClasses = 60;
constexpr int kTop = 80, kRight = 120;
int LeftMargin(int64_t k) { return k <= kMaxNamedClasses ? 200 : 90; }
constexpr int64_t kMaxAnnotatedClasses = 20;
const Font kTitleFont{0.7, 2};
const Font kSubtitleFont{0.5, 1};
const Font kAxisTitleFont{0.6, 1};

int CellSize(int64_t k) {
  return static_cast<int>(std::clamp<int64_t>(600 / std::max<int64_t>(k, 1), 4, 120));
}

// matplotlib's "Blues", white to dark blue (RGB stops).
cv::Scalar Blues(double v) {
  static const double kStops[][3] = {
      {247, 251, 255}, {222, 235, 247}, {198, 219, 239}, {158, 202, 225}, {107, 174, 214},
      {66, 146, 198},  {33, 113, 181},  {8, 81, 156},    {8, 48, 107},
  };
  constexpr int kLast = 8;
  if (!std::isfinite(v)) v = 0.0;
  const double at = std::clamp(v, 0.0, 1.0) * kLast;
  const int i = std::min(static_cast<int>(at), kLast - 1);
  const double t = at - i;
  double rgb[3];
  for (int c = 0; c < 3; ++c) rgb[c] = kStops[i][c] * (1 - t) + kStops[i + 1][c] * t;
  return cv::Scalar(rgb[2], rgb[1], rgb[0]);
}

// The largest font (up to `max_scale`) at which `text` fits in `width` pixels, or 0.
double FittingScale(const std::string& text, int width, double max_scale) {
  for (double scale = max_scale; scale >= 0.3; scale -= 0.05) {
    if (plot::TextSize(text, {scale, 1}).width <= width) return scale;
  }
  return 0.0;
}

}  // namespace

cv::Rect ConfusionCellRect(int64_t num_classes, int64_t row, int64_t col) {
  const int cell = CellSize(num_classes);
  return cv::Rect(LeftMargin(num_classes) + static_cast<int>(col) * cell,
                  kTop + static_cast<int>(row) * cell, cell, cell);
}

Status WriteConfusionPng(const std::string& path, const at::Tensor& confusion,
                         const std::vector<std::string>& class_names) {
  try {
    if (!confusion.defined() || confusion.dim() != 2 || confusion.size(0) != confusion.size(1) ||
        confusion.size(0) == 0) {
      std::string shape = "undefined";
      if (confusion.defined()) {
        shape = "[";
        for (int64_t d = 0; d < confusion.dim(); ++d) {
          absl::StrAppend(&shape, d > 0 ? ", " : "", confusion.size(d));
        }
        shape += "]";
      }
      return InvalidArgumentError("confusion plot " + path +
                                  ": the matrix must be square [K, K] with K >= 1, got " + shape);
    }
    const int64_t k = confusion.size(0);
    if (!class_names.empty() && static_cast<int64_t>(class_names.size()) != k) {
      return InvalidArgumentError(absl::StrCat("confusion plot ", path, ": ", class_names.size(),
                                               " class names for a ", k, "x", k, " matrix"));
    }
    const at::Tensor counts = confusion.detach().cpu().to(torch::kDouble).contiguous();
    const at::Tensor support = counts.sum(1);
    const at::Tensor shares = counts / support.clamp_min(1.0).unsqueeze(1);
    const double* count = counts.data_ptr<double>();
    const double* share = shares.data_ptr<double>();
    const double* row_total = support.data_ptr<double>();
    const double total = support.sum().item<double>();
    const double correct = counts.diagonal().sum().item<double>();

    const auto name = [&](int64_t i) {
      return class_names.empty() ? absl::StrCat(i) : class_names[i];
    };
    const int cell = CellSize(k);
    const int side = cell * static_cast<int>(k);
    const int left = LeftMargin(k);
    // Below the matrix: the rotated column names (as long as the longest) and the axis title.
    const Font label_font{std::min(0.5, std::max(0.35, cell / 30.0)), 1};
    int label_length = 20;
    if (k <= kMaxNamedClasses) {
      for (int64_t i = 0; i < k; ++i) {
        label_length =
            std::max(label_length,
                     plot::TextSize(plot::Ellipsize(name(i), label_font, 130), label_font).width);
      }
    }
    const int bottom = label_length + 60;
    cv::Mat canvas(kTop + side + bottom, left + side + kRight, CV_8UC3, plot::kWhite);

    // Cells, with their share (and count when there is room) for small K.
    for (int64_t r = 0; r < k; ++r) {
      for (int64_t c = 0; c < k; ++c) {
        const double v = share[r * k + c];
        const cv::Rect rect = ConfusionCellRect(k, r, c);
        cv::rectangle(canvas, rect, Blues(v), cv::FILLED);
        if (k > kMaxAnnotatedClasses) continue;
        // Empty cells in light grey, so the eye goes to where samples are.
        const bool empty = count[r * k + c] == 0;
        const cv::Scalar ink = v > 0.5 ? plot::kWhite : (empty ? plot::kGrey : plot::kBlack);
        const std::string percent =
            row_total[r] > 0 ? absl::StrFormat("%.0f%%", 100.0 * v) : std::string("-");
        const double scale = FittingScale("100%", cell - 6, 0.6);
        if (scale <= 0.0) continue;
        const bool with_count = cell >= 70 && !empty;
        const cv::Point centre(rect.x + cell / 2, rect.y + cell / 2 - (with_count ? 9 : 0));
        plot::PutText(canvas, percent, centre, {scale, 1}, ink, HAlign::kCenter, VAlign::kCenter);
        if (with_count) {
          plot::PutText(canvas, absl::StrFormat("%.0f", count[r * k + c]),
                        {centre.x, centre.y + 20}, {0.45, 1}, ink, HAlign::kCenter,
                        VAlign::kCenter);
        }
      }
    }
    if (k <= 40) {
      for (int64_t i = 1; i < k; ++i) {
        const int at = static_cast<int>(i) * cell;
        cv::line(canvas, {left + at, kTop}, {left + at, kTop + side}, plot::kWhite, 1);
        cv::line(canvas, {left, kTop + at}, {left + side, kTop + at}, plot::kWhite, 1);
      }
    }
    cv::rectangle(canvas, cv::Rect(left - 1, kTop - 1, side + 2, side + 2), plot::kDarkGrey, 1);

    // Axis labels: names (with the row's sample count) for up to 60 classes, indices beyond.
    if (k <= kMaxNamedClasses) {
      for (int64_t i = 0; i < k; ++i) {
        const int middle = static_cast<int>(i) * cell + cell / 2;
        const std::string rows_label =
            plot::Ellipsize(name(i), label_font, 110) + absl::StrFormat(" (%.0f)", row_total[i]);
        plot::PutText(canvas, rows_label, {left - 8, kTop + middle}, label_font, plot::kBlack,
                      HAlign::kRight, VAlign::kCenter);
        plot::PutVerticalText(canvas, plot::Ellipsize(name(i), label_font, 130),
                              {left + middle, kTop + side + 8}, label_font, plot::kBlack,
                              /*align_end=*/true);
      }
    } else {
      const plot::Ticks ticks = plot::NiceTicks(0, static_cast<double>(k - 1), 11);
      for (double v : ticks.values) {
        const int middle = static_cast<int>(v) * cell + cell / 2;
        const std::string text = absl::StrCat(static_cast<int64_t>(v));
        cv::line(canvas, {left - 5, kTop + middle}, {left - 1, kTop + middle}, plot::kDarkGrey);
        cv::line(canvas, {left + middle, kTop + side + 1}, {left + middle, kTop + side + 5},
                 plot::kDarkGrey);
        plot::PutText(canvas, text, {left - 8, kTop + middle}, {0.45, 1}, plot::kBlack,
                      HAlign::kRight, VAlign::kCenter);
        plot::PutText(canvas, text, {left + middle, kTop + side + 10}, {0.45, 1}, plot::kBlack,
                      HAlign::kCenter);
      }
    }
    plot::PutText(canvas, k <= kMaxNamedClasses ? "predicted class" : "predicted class (index)",
                  {left + side / 2, kTop + side + bottom - 14}, kAxisTitleFont, plot::kBlack,
                  HAlign::kCenter, VAlign::kBottom);
    plot::PutVerticalText(canvas, k <= kMaxNamedClasses ? "true class (samples)" : "true class",
                          {18, kTop + side / 2}, kAxisTitleFont, plot::kBlack);

    // Colour bar.
    const cv::Rect bar(left + side + 30, kTop, 20, side);
    for (int y = 0; y < bar.height; ++y) {
      const double v = 1.0 - static_cast<double>(y) / std::max(1, bar.height - 1);
      cv::line(canvas, {bar.x, bar.y + y}, {bar.x + bar.width - 1, bar.y + y}, Blues(v));
    }
    cv::rectangle(canvas, cv::Rect(bar.x - 1, bar.y - 1, bar.width + 2, bar.height + 2),
                  plot::kDarkGrey, 1);
    for (int percent = 0; percent <= 100; percent += side >= 200 ? 25 : 50) {
      const int y = bar.y + static_cast<int>(std::lround((100 - percent) / 100.0 * (side - 1)));
      cv::line(canvas, {bar.x + bar.width, y}, {bar.x + bar.width + 4, y}, plot::kDarkGrey);
      plot::PutText(canvas, absl::StrCat(percent, "%"), {bar.x + bar.width + 8, y}, {0.45, 1},
                    plot::kBlack, HAlign::kLeft, VAlign::kCenter);
    }

    const int centre = canvas.cols / 2;
    plot::PutText(canvas, "Confusion matrix (share of each true class)", {centre, 12}, kTitleFont,
                  plot::kBlack, HAlign::kCenter);
    plot::PutText(canvas,
                  absl::StrFormat("%d classes, %.0f samples, accuracy %.1f%%", k, total,
                                  total > 0 ? 100.0 * correct / total : 0.0),
                  {centre, 46}, kSubtitleFont, plot::kDarkGrey, HAlign::kCenter);
    return plot::WritePng(path, canvas);
  } catch (const c10::Error& e) {
    return InternalError("confusion plot " + path + ": " + e.what_without_backtrace());
  } catch (const cv::Exception& e) {
    return InternalError("confusion plot " + path + ": " + e.what());
  } catch (const std::exception& e) {
    return InternalError("confusion plot " + path + ": " + e.what());
  }
}

}  // namespace selene::report
