#include "server/report/sample_grid.h"

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

constexpr int kMargin = 20;
constexpr int kGap = 16;
const Font kTitleFont{0.7, 2};
const Font kCaptionFont{0.5, 1};
const cv::Scalar kRight(0, 140, 0);  // BGR green
const cv::Scalar kWrong(0, 0, 210);  // BGR red

std::string ShapeOf(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::string text = "[";
  for (int64_t d = 0; d < t.dim(); ++d) absl::StrAppend(&text, d > 0 ? ", " : "", t.size(d));
  return text + "] " + std::string(t.dtype().name());
}

// Images as uint8 NHWC on the CPU, whatever they came as.
StatusOr<at::Tensor> ImagesNhwc(const at::Tensor& images) {
  if (!images.defined() || images.dim() != 4 || (images.size(1) != 1 && images.size(1) != 3) ||
      images.size(0) == 0) {
    return InvalidArgumentError("samples: images must be [N, 1 or 3, H, W] with N >= 1, got " +
                                ShapeOf(images));
  }
  at::Tensor x = images.detach().cpu();
  if (x.is_floating_point()) {
    if (x.max().item<double>() <= 1.0) x = x * 255.0;
    x = x.round().clamp(0, 255);
  }
  return x.to(torch::kUInt8).permute({0, 2, 3, 1}).contiguous();
}

// Class ids as int64 [N, H, W] (segmentation) or [N] (classification) on the CPU.
StatusOr<at::Tensor> Labels(const at::Tensor& labels, const char* name, const SampleSet& s,
                            int64_t n, int64_t h, int64_t w) {
  if (!labels.defined() || labels.is_floating_point() || labels.is_complex()) {
    return InvalidArgumentError(
        absl::StrCat("samples: ", name, " must be integer class ids, got ", ShapeOf(labels)));
  }
  at::Tensor x = labels.detach().cpu().to(torch::kLong);
  if (s.task == train::Task::kClassification) {
    if (x.dim() != 1 || x.size(0) != n) {
      return InvalidArgumentError(
          absl::StrCat("samples: ", name, " must be [", n, "], got ", ShapeOf(labels)));
    }
    return x.contiguous();
  }
  if (x.dim() == 4 && x.size(1) == 1) x = x.squeeze(1);
  if (x.dim() != 3 || x.size(0) != n || x.size(1) != h || x.size(2) != w) {
    return InvalidArgumentError(absl::StrCat("samples: ", name, " must be [", n, ", ", h, ", ", w,
                                             "] like the images, got ", ShapeOf(labels)));
  }
  return x.contiguous();
}

cv::Mat ImageAt(const at::Tensor& nhwc, int64_t i) {
  const at::Tensor one = nhwc[i].contiguous();
  const int h = static_cast<int>(one.size(0)), w = static_cast<int>(one.size(1));
  const int c = static_cast<int>(one.size(2));
  cv::Mat view(h, w, c == 1 ? CV_8UC1 : CV_8UC3, one.data_ptr<uint8_t>());
  cv::Mat bgr;
  cv::cvtColor(view, bgr, c == 1 ? cv::COLOR_GRAY2BGR : cv::COLOR_RGB2BGR);  // copies
  return bgr;
}

// Display size: small images grow by a whole factor to at least `min_side` (crisp pixels),
// large ones shrink to 256 px on their long side.
cv::Size DisplaySize(int h, int w, int min_side) {
  const int side = std::max(h, w);
  if (side > 256) {
    const double s = 256.0 / side;
    return {std::max(1, static_cast<int>(std::lround(w * s))),
            std::max(1, static_cast<int>(std::lround(h * s)))};
  }
  const int factor = std::max(1, (min_side + side - 1) / side);
  return {w * factor, h * factor};
}

cv::Mat ResizeImage(const cv::Mat& image, cv::Size size) {
  cv::Mat out;
  const bool grow = size.width >= image.cols;
  cv::resize(image, out, size, 0, 0, grow ? cv::INTER_NEAREST : cv::INTER_AREA);
  return out;
}

cv::Vec3b Hatch(int x, int y) {
  return ((x + y) / 4) % 2 == 0 ? cv::Vec3b(170, 170, 170) : cv::Vec3b(100, 100, 100);
}

cv::Vec3b ToVec(const cv::Scalar& s) {
  return cv::Vec3b(static_cast<uint8_t>(s[0]), static_cast<uint8_t>(s[1]),
                   static_cast<uint8_t>(s[2]));
}

// A mask of class ids drawn at `size` (nearest neighbour), hatching computed at display
// resolution so its stripes stay sharp.
cv::Mat ColourMask(const at::Tensor& ids, cv::Size size, bool binary, int64_t ignore_index) {
  const int64_t h = ids.size(0), w = ids.size(1);
  const int64_t* data = ids.data_ptr<int64_t>();
  cv::Mat out(size, CV_8UC3);
  for (int y = 0; y < size.height; ++y) {
    const int64_t sy = std::min<int64_t>(h - 1, y * h / size.height);
    for (int x = 0; x < size.width; ++x) {
      const int64_t sx = std::min<int64_t>(w - 1, x * w / size.width);
      const int64_t id = data[sy * w + sx];
      cv::Vec3b& pixel = out.at<cv::Vec3b>(y, x);
      if (id == ignore_index || id < 0) {
        pixel = Hatch(x, y);
      } else if (binary) {
        pixel = id != 0 ? cv::Vec3b(255, 255, 255) : cv::Vec3b(0, 0, 0);
      } else {
        pixel = ToVec(ClassColour(id));
      }
    }
  }
  return out;
}

void Paste(cv::Mat& canvas, const cv::Mat& tile, cv::Point at) {
  tile.copyTo(canvas(cv::Rect(at, tile.size())));
  cv::rectangle(canvas, cv::Rect(at - cv::Point(1, 1), tile.size() + cv::Size(2, 2)), plot::kGrey,
                1);
}

struct LegendItem {
  std::string name;
  cv::Scalar colour;
  bool hatched = false;
};

// Swatches and names in rows that wrap at `width`; returns the height used.
int DrawLegend(cv::Mat* canvas, const std::vector<LegendItem>& items, cv::Point origin, int width) {
  constexpr int kSwatch = 18, kRow = 28;
  int x = origin.x, y = origin.y;
  for (const LegendItem& item : items) {
    const std::string name = plot::Ellipsize(item.name, kCaptionFont, 160);
    const int item_width = kSwatch + 8 + plot::TextSize(name, kCaptionFont).width + 22;
    if (x > origin.x && x + item_width > origin.x + width) {
      x = origin.x;
      y += kRow;
    }
    if (canvas != nullptr) {
      const cv::Rect swatch(x, y, kSwatch, kSwatch);
      if (item.hatched) {
        for (int sy = 0; sy < kSwatch; ++sy) {
          for (int sx = 0; sx < kSwatch; ++sx)
            canvas->at<cv::Vec3b>(y + sy, x + sx) = Hatch(sx, sy);
        }
      } else {
        cv::rectangle(*canvas, swatch, item.colour, cv::FILLED);
      }
      cv::rectangle(*canvas, swatch, plot::kDarkGrey, 1);
      plot::PutText(*canvas, name, {x + kSwatch + 8, y + kSwatch / 2}, kCaptionFont, plot::kBlack,
                    HAlign::kLeft, VAlign::kCenter);
    }
    x += item_width;
  }
  return y - origin.y + kRow;
}

std::string ClassName(const std::vector<std::string>& names, int64_t id) {
  if (id >= 0 && id < static_cast<int64_t>(names.size())) return names[id];
  return absl::StrCat(id);
}

StatusOr<cv::Mat> DrawSegmentation(const SampleSet& s, const at::Tensor& images,
                                   const at::Tensor& predictions, const at::Tensor& truths) {
  const bool binary = s.task == train::Task::kBinarySegmentation;
  const int64_t rows = std::min<int64_t>(images.size(0), 5);
  const int h = static_cast<int>(images.size(1)), w = static_cast<int>(images.size(2));
  const cv::Size cell = DisplaySize(h, w, 192);
  constexpr int kHeader = 50, kCaption = 30;
  const int width = 2 * kMargin + 3 * cell.width + 2 * kGap;

  // Legend: the classes, and the ignored label when the shown truths hold it.
  std::vector<LegendItem> legend;
  const at::Tensor shown_truths = truths.slice(0, 0, rows);
  if (binary) {
    legend.push_back({"background", plot::kBlack});
    legend.push_back({s.class_names.empty() ? "foreground" : s.class_names.back(), plot::kWhite});
  } else {
    int64_t classes = static_cast<int64_t>(s.class_names.size());
    if (classes == 0) {
      classes = std::max(predictions.slice(0, 0, rows).max().item<int64_t>(),
                         shown_truths.max().item<int64_t>()) +
                1;
    }
    for (int64_t k = 0; k < classes; ++k) {
      if (k == s.ignore_index) continue;
      legend.push_back({ClassName(s.class_names, k), ClassColour(k)});
    }
  }
  if ((shown_truths == s.ignore_index).any().item<bool>() ||
      (shown_truths < 0).any().item<bool>()) {
    legend.push_back({"ignored", plot::kGrey, true});
  }
  const int legend_height = DrawLegend(nullptr, legend, {kMargin, 0}, width - 2 * kMargin);

  const int row_height = cell.height + kCaption + 8;
  const int height = kHeader + static_cast<int>(rows) * row_height + 10 + legend_height + kMargin;
  cv::Mat canvas(height, width, CV_8UC3, plot::kWhite);
  const char* titles[] = {"input", "prediction", "ground truth"};
  for (int c = 0; c < 3; ++c) {
    plot::PutText(canvas, titles[c],
                  {kMargin + c * (cell.width + kGap) + cell.width / 2, kHeader - 14}, kTitleFont,
                  plot::kBlack, HAlign::kCenter, VAlign::kBottom);
  }
  for (int64_t i = 0; i < rows; ++i) {
    const int y = kHeader + static_cast<int>(i) * row_height;
    const at::Tensor pred = predictions[i], truth = truths[i];
    Paste(canvas, ResizeImage(ImageAt(images, i), cell), {kMargin, y});
    Paste(canvas, ColourMask(pred, cell, binary, s.ignore_index), {kMargin + cell.width + kGap, y});
    Paste(canvas, ColourMask(truth, cell, binary, s.ignore_index),
          {kMargin + 2 * (cell.width + kGap), y});

    const at::Tensor valid = (truth != s.ignore_index) & (truth >= 0);
    std::string score;
    if (binary) {
      const at::Tensor p = (pred != 0) & valid, t = (truth != 0) & valid;
      const double tp = (p & t).sum().item<double>();
      const double both = p.sum().item<double>() + t.sum().item<double>();
      score = absl::StrFormat("Dice %.3f", both > 0 ? 2 * tp / both : 1.0);
    } else {
      const double total = valid.sum().item<double>();
      const double hits = ((pred == truth) & valid).sum().item<double>();
      score = total > 0 ? absl::StrFormat("pixel accuracy %.3f", hits / total)
                        : std::string("no labelled pixels");
    }
    const int caption_y = y + cell.height + 6;
    plot::PutText(canvas, absl::StrCat("sample ", i + 1), {kMargin + cell.width / 2, caption_y},
                  kCaptionFont, plot::kDarkGrey, HAlign::kCenter);
    plot::PutText(canvas, score, {kMargin + cell.width + kGap + cell.width / 2, caption_y},
                  kCaptionFont, plot::kBlack, HAlign::kCenter);
  }
  DrawLegend(&canvas, legend, {kMargin, height - kMargin - legend_height + 6}, width - 2 * kMargin);
  return canvas;
}

cv::Mat DrawClassification(const SampleSet& s, const at::Tensor& images,
                           const at::Tensor& predictions, const at::Tensor& truths) {
  const int64_t n = std::min<int64_t>(images.size(0), 16);
  const int columns = static_cast<int>(std::min<int64_t>(n, 4));
  const int rows = static_cast<int>((n + columns - 1) / columns);
  const int h = static_cast<int>(images.size(1)), w = static_cast<int>(images.size(2));
  const cv::Size image_size = DisplaySize(h, w, 128);
  const int cell_width = std::max(image_size.width, 180);
  constexpr int kHeader = 50, kCaption = 48;
  const int cell_height = image_size.height + kCaption;
  const int width = 2 * kMargin + columns * cell_width + (columns - 1) * kGap;
  const int height = kHeader + rows * cell_height + (rows - 1) * kGap + kMargin;
  cv::Mat canvas(height, width, CV_8UC3, plot::kWhite);

  const int64_t* pred = predictions.data_ptr<int64_t>();
  const int64_t* truth = truths.data_ptr<int64_t>();
  int64_t right = 0;
  for (int64_t i = 0; i < n; ++i) right += pred[i] == truth[i];
  plot::PutText(canvas, absl::StrCat(right, " of ", n, " right"), {width / 2, kHeader - 14},
                kTitleFont, plot::kBlack, HAlign::kCenter, VAlign::kBottom);
  for (int64_t i = 0; i < n; ++i) {
    const int col = static_cast<int>(i % columns), row = static_cast<int>(i / columns);
    const int x = kMargin + col * (cell_width + kGap);
    const int y = kHeader + row * (cell_height + kGap);
    const bool correct = pred[i] == truth[i];
    const cv::Scalar colour = correct ? kRight : kWrong;
    const cv::Point at(x + (cell_width - image_size.width) / 2, y);
    ResizeImage(ImageAt(images, i), image_size).copyTo(canvas(cv::Rect(at, image_size)));
    cv::rectangle(canvas, cv::Rect(at - cv::Point(3, 3), image_size + cv::Size(6, 6)), colour, 3);
    const int text_y = y + image_size.height + 8;
    plot::PutText(
        canvas,
        plot::Ellipsize("pred: " + ClassName(s.class_names, pred[i]), kCaptionFont, cell_width),
        {x + cell_width / 2, text_y}, kCaptionFont, colour, HAlign::kCenter);
    plot::PutText(
        canvas,
        plot::Ellipsize("true: " + ClassName(s.class_names, truth[i]), kCaptionFont, cell_width),
        {x + cell_width / 2, text_y + 20}, kCaptionFont, colour, HAlign::kCenter);
  }
  return canvas;
}

}  // namespace

cv::Scalar ClassColour(int64_t id) {
  // RGB: black, then matplotlib's tab10 and its lighter tab20 partners (greys left out).
  static const int kRgb[][3] = {
      {0, 0, 0},       {31, 119, 180},  {255, 127, 14},  {44, 160, 44},   {214, 39, 40},
      {148, 103, 189}, {140, 86, 75},   {227, 119, 194}, {188, 189, 34},  {23, 190, 207},
      {174, 199, 232}, {255, 187, 120}, {152, 223, 138}, {255, 152, 150}, {197, 176, 213},
      {196, 156, 148}, {247, 182, 210}, {219, 219, 141}, {158, 218, 229}, {255, 255, 255},
  };
  constexpr int64_t kFixed = sizeof(kRgb) / sizeof(kRgb[0]);
  if (id >= 0 && id < kFixed) return cv::Scalar(kRgb[id][2], kRgb[id][1], kRgb[id][0]);
  // Beyond the table: hues spread by the golden ratio, saturated and bright.
  const double hue = std::fmod(static_cast<double>(id) * 0.618033988749895, 1.0) * 180.0;
  cv::Mat hsv(1, 1, CV_8UC3, cv::Scalar(hue, 200, 230)), bgr;
  cv::cvtColor(hsv, bgr, cv::COLOR_HSV2BGR);
  const cv::Vec3b c = bgr.at<cv::Vec3b>(0, 0);
  return cv::Scalar(c[0], c[1], c[2]);
}

Status WriteSamplesPng(const std::string& path, const SampleSet& samples) {
  try {
    SELENE_ASSIGN_OR_RETURN(const at::Tensor images, ImagesNhwc(samples.images));
    const int64_t n = images.size(0), h = images.size(1), w = images.size(2);
    SELENE_ASSIGN_OR_RETURN(const at::Tensor predictions,
                            Labels(samples.predictions, "predictions", samples, n, h, w));
    SELENE_ASSIGN_OR_RETURN(const at::Tensor truths,
                            Labels(samples.truths, "truths", samples, n, h, w));
    cv::Mat canvas;
    if (samples.task == train::Task::kClassification) {
      canvas = DrawClassification(samples, images, predictions, truths);
    } else {
      SELENE_ASSIGN_OR_RETURN(canvas, DrawSegmentation(samples, images, predictions, truths));
    }
    return plot::WritePng(path, canvas);
  } catch (const c10::Error& e) {
    return InternalError("samples " + path + ": " + e.what_without_backtrace());
  } catch (const cv::Exception& e) {
    return InternalError("samples " + path + ": " + e.what());
  } catch (const std::exception& e) {
    return InternalError("samples " + path + ": " + e.what());
  }
}

}  // namespace selene::report
