#include "server/report/curves_plot.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>

#include "absl/strings/str_cat.h"
#include "server/report/main_metrics.h"
#include "server/report/plot_canvas.h"
#include "server/train/epoch_record.h"

namespace selene::report {
namespace {

using plot::Font;
using plot::HAlign;
using plot::VAlign;

constexpr int kWidth = 1400;
constexpr int kHeight = 520;
constexpr int kPanelWidth = kWidth / 2;
// Plot area inside each panel: room on the left for tick labels and the axis title, at the
// bottom for tick labels and "epoch", at the top for the panel title.
constexpr int kLeft = 95, kRight = 30, kTop = 55, kBottom = 80;

const Font kTitleFont{0.8, 2};
const Font kAxisTitleFont{0.6, 1};
const Font kTickFont{0.5, 1};
const Font kLegendFont{0.5, 1};

const cv::Scalar kLossColour(40, 39, 214);  // red: kept apart from the metric colours
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Series {
  std::string label;
  cv::Scalar colour;
  bool validation = false;     // dashed, with markers
  std::vector<double> values;  // one per history record; NaN = missing
};

bool AnyFinite(const Series& s) {
  return std::any_of(s.values.begin(), s.values.end(), [](double v) { return std::isfinite(v); });
}

double Lookup(const train::MetricValues& values, const std::string& name) {
  auto it = values.find(name);
  return it == values.end() ? kNaN : it->second;
}

// Maps data coordinates into a plot rectangle.
struct Frame {
  cv::Rect plot;
  double x_lo, x_hi, y_lo, y_hi;
  cv::Point2d Map(double x, double y) const {
    return {plot.x + (x - x_lo) / (x_hi - x_lo) * plot.width,
            plot.y + plot.height - (y - y_lo) / (y_hi - y_lo) * plot.height};
  }
};

// The y range: the finite values padded (a flat curve gets a band around it), kept >= 0 for
// data that is, and widened to whole ticks.
std::pair<Frame, plot::Ticks> YRange(Frame frame, const std::vector<Series>& series) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const Series& s : series) {
    for (double v : s.values) {
      if (!std::isfinite(v)) continue;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  if (!(lo <= hi)) {  // nothing to show: a plain unit range
    plot::Ticks ticks = plot::NiceTicks(0.0, 1.0, 6);
    frame.y_lo = 0.0;
    frame.y_hi = 1.0;
    return {frame, ticks};
  }
  const bool non_negative = lo >= 0.0;
  const bool unit = non_negative && hi <= 1.0;  // scores: no axis far above 1
  const double span = hi - lo;
  double pad = 0.06 * span;
  if (span <= 1e-12 * std::max(1.0, std::abs(hi))) pad = hi != 0.0 ? 0.1 * std::abs(hi) : 0.5;
  lo -= pad;
  hi += pad;
  if (non_negative) lo = std::max(lo, 0.0);
  plot::Ticks ticks = plot::NiceTicks(lo, hi, 7);
  frame.y_lo = std::floor(lo / ticks.step + 1e-9) * ticks.step;
  frame.y_hi = std::ceil(hi / ticks.step - 1e-9) * ticks.step;
  if (unit && frame.y_hi > 1.0) frame.y_hi = std::max(hi, 1.0 + 0.03 * (1.0 - frame.y_lo));
  ticks = plot::NiceTicks(frame.y_lo, frame.y_hi, 8);
  return {frame, ticks};
}

struct LegendEntry {
  std::string label;
  cv::Scalar colour;
  bool dashed;
};

// The corner of the plot where the legend hides the fewest curve points.
cv::Rect PlaceLegend(const cv::Rect& plot, cv::Size box, const std::vector<cv::Point2d>& occupied) {
  constexpr int kInset = 10;
  const std::vector<cv::Point> corners = {
      {plot.x + plot.width - kInset - box.width, plot.y + kInset},
      {plot.x + kInset, plot.y + kInset},
      {plot.x + plot.width - kInset - box.width, plot.y + plot.height - kInset - box.height},
      {plot.x + kInset, plot.y + plot.height - kInset - box.height},
      {plot.x + plot.width - kInset - box.width, plot.y + (plot.height - box.height) / 2},
      {plot.x + kInset, plot.y + (plot.height - box.height) / 2},
  };
  cv::Rect best;
  long best_cost = std::numeric_limits<long>::max();
  for (const cv::Point& corner : corners) {
    const cv::Rect candidate(corner, box);
    const cv::Rect grown(candidate.x - 4, candidate.y - 4, candidate.width + 8,
                         candidate.height + 8);
    long cost = 0;
    for (const cv::Point2d& p : occupied) {
      if (grown.contains(cv::Point(static_cast<int>(p.x), static_cast<int>(p.y)))) ++cost;
    }
    if (cost < best_cost) {
      best_cost = cost;
      best = candidate;
    }
  }
  return best;
}

void DrawPanel(cv::Mat& canvas, const cv::Rect& plot, const std::string& title,
               const std::string& y_title, const std::vector<double>& epochs,
               const std::vector<Series>& all_series, int64_t best_index) {
  std::vector<Series> series;
  for (const Series& s : all_series) {
    if (AnyFinite(s)) series.push_back(s);
  }

  Frame frame{plot, 0, 1, 0, 1};
  const double first = epochs.front(), last = epochs.back();
  if (last > first) {
    const double pad = 0.03 * (last - first);
    frame.x_lo = first - pad;
    frame.x_hi = last + pad;
  } else {
    frame.x_lo = first - 0.5;
    frame.x_hi = first + 0.5;
  }
  plot::Ticks y_ticks;
  std::tie(frame, y_ticks) = YRange(frame, series);

  // Grid and axes.
  for (double v : y_ticks.values) {
    const int y = static_cast<int>(std::lround(frame.Map(0, v).y));
    cv::line(canvas, {plot.x, y}, {plot.x + plot.width, y}, plot::kLightGrey, 1, cv::LINE_AA);
    cv::line(canvas, {plot.x - 6, y}, {plot.x, y}, plot::kDarkGrey, 1, cv::LINE_AA);
    plot::PutText(canvas, plot::TickLabel(v, y_ticks.step), {plot.x - 10, y}, kTickFont,
                  plot::kDarkGrey, HAlign::kRight, VAlign::kCenter);
  }
  plot::Ticks x_ticks = plot::NiceTicks(first, std::max(last, first + 1), 11);
  const double x_step = std::max(1.0, std::round(x_ticks.step));
  for (double e = std::ceil(first / x_step) * x_step; e <= last + 1e-9; e += x_step) {
    if (e < first - 1e-9) continue;
    const int x = static_cast<int>(std::lround(frame.Map(e, 0).x));
    cv::line(canvas, {x, plot.y + plot.height}, {x, plot.y + plot.height + 6}, plot::kDarkGrey, 1,
             cv::LINE_AA);
    plot::PutText(canvas, absl::StrCat(static_cast<int64_t>(std::lround(e))),
                  {x, plot.y + plot.height + 12}, kTickFont, plot::kDarkGrey, HAlign::kCenter);
  }
  cv::rectangle(canvas, plot, plot::kDarkGrey, 1, cv::LINE_AA);

  // Best epoch: a dotted vertical line; its label goes where it hides the fewest curve points,
  // once the curves are drawn.
  double best_x = 0.0;
  if (best_index >= 0) {
    best_x = frame.Map(epochs[best_index], 0).x;
    plot::DrawDashedLine(canvas, {best_x, static_cast<double>(plot.y)},
                         {best_x, static_cast<double>(plot.y + plot.height)}, plot::kGrey, 1, 4, 4);
  }

  // Curves, broken at missing values; points without neighbours get a marker so a single
  // epoch (or an island between NaNs) stays visible.
  std::vector<cv::Point2d> occupied;
  const bool markers = epochs.size() <= 40;
  for (const Series& s : series) {
    std::vector<cv::Point2d> run;
    auto flush = [&]() {
      plot::DrawPolyline(canvas, run, s.colour, 2, s.validation);
      for (size_t i = 1; i < run.size(); ++i) {
        const double length = cv::norm(run[i] - run[i - 1]);
        for (double t = 0; t < length; t += 3) {
          occupied.push_back(run[i - 1] + (run[i] - run[i - 1]) * (t / length));
        }
      }
      for (const cv::Point2d& p : run) {
        occupied.push_back(p);
        if (run.size() == 1 || (markers && s.validation)) {
          cv::circle(
              canvas,
              cv::Point(static_cast<int>(std::lround(p.x)), static_cast<int>(std::lround(p.y))),
              run.size() == 1 ? 5 : 4, s.colour, cv::FILLED, cv::LINE_AA);
        }
      }
      run.clear();
    };
    for (size_t i = 0; i < s.values.size(); ++i) {
      if (std::isfinite(s.values[i])) {
        run.push_back(frame.Map(epochs[i], s.values[i]));
      } else {
        flush();
      }
    }
    flush();
    if (best_index >= 0 && s.validation && std::isfinite(s.values[best_index])) {
      const cv::Point2d p = frame.Map(epochs[best_index], s.values[best_index]);
      cv::circle(canvas,
                 cv::Point(static_cast<int>(std::lround(p.x)), static_cast<int>(std::lround(p.y))),
                 9, s.colour, 2, cv::LINE_AA);
    }
  }

  // The legend takes the emptiest corner first; the best-epoch label, small, fits around it.
  constexpr int kRow = 24, kSample = 44, kPad = 10;
  cv::Rect legend;
  if (!series.empty()) {
    int text_width = 0;
    for (const Series& s : series) {
      text_width = std::max(text_width, plot::TextSize(s.label, kLegendFont).width);
    }
    const cv::Size box(kPad + kSample + 8 + text_width + kPad,
                       kPad + kRow * static_cast<int>(series.size()) + kPad - 6);
    legend = PlaceLegend(plot, box, occupied);
  }

  if (best_index >= 0) {
    const std::string text =
        absl::StrCat("best epoch ", static_cast<int64_t>(std::lround(epochs[best_index])));
    const cv::Size size = plot::TextSize(text, kLegendFont) + cv::Size(6, 4);
    const int right = static_cast<int>(best_x) + 5,
              left = static_cast<int>(best_x) - 5 - size.width;
    // Either side of the line, from the top down: the first spot that hides nothing wins.
    std::vector<cv::Point> corners;
    for (int step = 0; step <= 8; ++step) {
      const int y = plot.y + 5 + (plot.height - 10 - size.height) * step / 8;
      corners.emplace_back(right, y);
      corners.emplace_back(left, y);
    }
    cv::Rect label;
    long best_cost = std::numeric_limits<long>::max();
    for (const cv::Point& corner : corners) {
      const cv::Rect candidate(corner, size);
      if ((candidate & plot) != candidate) continue;
      long cost = 1000L * (candidate & legend).area();
      const cv::Rect grown(candidate.x - 6, candidate.y - 6, candidate.width + 12,
                           candidate.height + 12);  // lines and markers have a width
      for (const cv::Point2d& p : occupied) {
        if (grown.contains(cv::Point(static_cast<int>(p.x), static_cast<int>(p.y)))) ++cost;
      }
      if (cost < best_cost) {
        best_cost = cost;
        label = candidate;
      }
    }
    if (!label.empty()) {
      cv::rectangle(canvas, label, plot::kWhite, cv::FILLED);
      plot::PutText(canvas, text, label.tl() + cv::Point(3, 2), kLegendFont, plot::kDarkGrey);
    }
  }

  if (series.empty()) {
    plot::PutText(canvas, "no values recorded", {plot.x + plot.width / 2, plot.y + plot.height / 2},
                  kAxisTitleFont, plot::kGrey, HAlign::kCenter, VAlign::kCenter);
  } else {
    // A sample of each line (its dash pattern and marker too) and its label.
    cv::rectangle(canvas, legend, plot::kWhite, cv::FILLED);
    cv::rectangle(canvas, legend, plot::kGrey, 1);
    for (size_t i = 0; i < series.size(); ++i) {
      const double y = legend.y + kPad + kRow * static_cast<double>(i) + 8;
      const cv::Point2d from(legend.x + kPad, y), to(legend.x + kPad + kSample, y);
      plot::DrawPolyline(canvas, {from, to}, series[i].colour, 2, series[i].validation);
      if (series[i].validation && markers) {
        cv::circle(canvas, cv::Point(legend.x + kPad + kSample / 2, static_cast<int>(y)), 4,
                   series[i].colour, cv::FILLED, cv::LINE_AA);
      }
      plot::PutText(canvas, series[i].label, {legend.x + kPad + kSample + 8, static_cast<int>(y)},
                    kLegendFont, plot::kBlack, HAlign::kLeft, VAlign::kCenter);
    }
  }

  plot::PutText(canvas, title, {plot.x + plot.width / 2, plot.y - 14}, kTitleFont, plot::kBlack,
                HAlign::kCenter, VAlign::kBottom);
  plot::PutText(canvas, "epoch", {plot.x + plot.width / 2, plot.y + plot.height + 45},
                kAxisTitleFont, plot::kBlack, HAlign::kCenter);
  plot::PutVerticalText(canvas, y_title, {plot.x - kLeft + 18, plot.y + plot.height / 2},
                        kAxisTitleFont, plot::kBlack);
}

}  // namespace

CurvesLayout GetCurvesLayout() {
  CurvesLayout layout;
  layout.canvas = cv::Size(kWidth, kHeight);
  layout.loss_plot = cv::Rect(kLeft, kTop, kPanelWidth - kLeft - kRight, kHeight - kTop - kBottom);
  layout.metrics_plot = layout.loss_plot + cv::Point(kPanelWidth, 0);
  return layout;
}

Status WriteCurvesPng(const std::string& path, const std::vector<train::EpochRecord>& history,
                      train::Task task, int64_t best_epoch) {
  if (history.empty()) {
    return InvalidArgumentError("curves plot " + path + ": the history has no epochs");
  }
  try {
    std::vector<double> epochs;
    int64_t best_index = -1;
    for (size_t i = 0; i < history.size(); ++i) {
      epochs.push_back(static_cast<double>(history[i].epoch + 1));
      if (history[i].epoch == best_epoch) best_index = static_cast<int64_t>(i);
    }
    Series train_loss{"train loss", kLossColour, false, {}};
    Series val_loss{"val loss", kLossColour, true, {}};
    for (const train::EpochRecord& r : history) {
      train_loss.values.push_back(r.train_loss);
      val_loss.values.push_back(r.val_loss);
    }
    std::vector<Series> metrics;
    const std::vector<std::string> names = MainMetrics(task);
    for (size_t m = 0; m < names.size(); ++m) {
      const cv::Scalar colour = plot::LineColours()[m % plot::LineColours().size()];
      Series val{"val " + MetricLabel(names[m]), colour, true, {}};
      Series train{"train " + MetricLabel(names[m]), colour, false, {}};
      for (const train::EpochRecord& r : history) {
        val.values.push_back(Lookup(r.val_metrics, names[m]));
        train.values.push_back(Lookup(r.train_metrics, names[m]));
      }
      metrics.push_back(std::move(val));
      metrics.push_back(std::move(train));
    }

    const CurvesLayout layout = GetCurvesLayout();
    cv::Mat canvas(layout.canvas, CV_8UC3, plot::kWhite);
    DrawPanel(canvas, layout.loss_plot, "Loss", "loss", epochs, {train_loss, val_loss}, best_index);
    DrawPanel(canvas, layout.metrics_plot, "Metrics", "score", epochs, metrics, best_index);
    return plot::WritePng(path, canvas);
  } catch (const cv::Exception& e) {
    return InternalError("curves plot " + path + ": " + e.what());
  } catch (const std::exception& e) {
    return InternalError("curves plot " + path + ": " + e.what());
  }
}

}  // namespace selene::report
