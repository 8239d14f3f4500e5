#include "server/data/augmentation.h"

#include <torch/torch.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace selene::data {
namespace {

namespace F = torch::nn::functional;

constexpr double kPi = 3.14159265358979323846;
// torchvision's RandomResizedCrop aspect-ratio range and its number of tries before falling back.
constexpr double kMinRatio = 3.0 / 4.0;
constexpr double kMaxRatio = 4.0 / 3.0;
constexpr int kCropAttempts = 10;
// ITU-R 601 luma, the weights torchvision's rgb_to_grayscale uses.
constexpr float kLuma[3] = {0.2989f, 0.587f, 0.114f};

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// SplitMix64: torch's generator API differs between 1.13 and 2.x, and a stream of our own keeps
// the parameters identical across versions and devices and away from torch's global generator.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    const uint64_t x = state_;
    state_ += 0x9e3779b97f4a7c15ULL;
    return Mix(x);
  }
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  bool Coin() { return (Next() >> 63) != 0; }

 private:
  uint64_t state_;
};

// Each image draws from its own two streams (geometry, colour), so its parameters depend on the
// seed and its place in the batch only, not on which other options are switched on.
Rng ImageStream(uint64_t seed, int64_t image, uint64_t stream) {
  return Rng(Mix(Mix(seed) ^ Mix(static_cast<uint64_t>(image) * 2 + stream)));
}

std::string Format(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

Status Invalid(const std::string& field, double value, const std::string& rule) {
  return InvalidArgumentError("augmentation." + field + ": " + Format(value) + " " + rule);
}

bool HasCrop(const AugmentationOptions& o) {
  return o.crop_scale_min < 1.0 || o.crop_scale_max < 1.0;
}

bool HasWarp(const AugmentationOptions& o) { return o.rotation_degrees > 0.0 || HasCrop(o); }

bool HasColour(const AugmentationOptions& o) {
  return o.brightness > 0.0 || o.contrast > 0.0 || o.saturation > 0.0;
}

// The region of the source a random resized crop takes, in normalised coordinates ([-1, 1] spans
// the image's outer edges, as grid_sample with align_corners=false): centre and half extents.
struct CropBox {
  double cx = 0.0, cy = 0.0, sx = 1.0, sy = 1.0;
};

// torchvision's RandomResizedCrop.get_params, in continuous pixels: the crop is resampled
// anyway, so rounding it to whole pixels would only add bias.
CropBox DrawCrop(const AugmentationOptions& o, Rng& rng, double height, double width) {
  const double area = height * width;
  for (int attempt = 0; attempt < kCropAttempts; ++attempt) {
    const double target = area * rng.Uniform(o.crop_scale_min, o.crop_scale_max);
    const double ratio = std::exp(rng.Uniform(std::log(kMinRatio), std::log(kMaxRatio)));
    const double w = std::sqrt(target * ratio);
    const double h = std::sqrt(target / ratio);
    if (w <= width && h <= height) {
      const double x0 = rng.Uniform(0.0, width - w);
      const double y0 = rng.Uniform(0.0, height - h);
      return {2.0 * (x0 + w / 2) / width - 1.0, 2.0 * (y0 + h / 2) / height - 1.0, w / width,
              h / height};
    }
  }
  // Fallback: the largest centred crop whose aspect ratio is in range.
  const double in_ratio = width / height;
  if (in_ratio < kMinRatio) return {0.0, 0.0, 1.0, width / kMinRatio / height};
  if (in_ratio > kMaxRatio) return {0.0, 0.0, height * kMaxRatio / width, 1.0};
  return {};
}

// One image's geometry as the 2x3 matrix affine_grid takes: output coordinates -> flip -> rotation
// (a true rotation in pixels, whatever the aspect ratio) -> the crop box in the source.
std::array<float, 6> DrawWarp(const AugmentationOptions& o, Rng& rng, double height, double width) {
  const double fx = o.hflip && rng.Coin() ? -1.0 : 1.0;
  const double fy = o.vflip && rng.Coin() ? -1.0 : 1.0;
  const double angle = o.rotation_degrees > 0.0
                           ? rng.Uniform(-o.rotation_degrees, o.rotation_degrees) * kPi / 180
                           : 0.0;
  const CropBox crop = HasCrop(o) ? DrawCrop(o, rng, height, width) : CropBox{};
  const double c = std::cos(angle), s = std::sin(angle);
  // Rotation in normalised coordinates: scale to pixels, rotate, scale back.
  const double r00 = c, r01 = -s * height / width, r10 = s * width / height, r11 = c;
  return {static_cast<float>(crop.sx * r00 * fx),
          static_cast<float>(crop.sx * r01 * fy),
          static_cast<float>(crop.cx),
          static_cast<float>(crop.sy * r10 * fx),
          static_cast<float>(crop.sy * r11 * fy),
          static_cast<float>(crop.cy)};
}

// Mirrors the selected images along `dim` exactly (no resampling), images and masks alike.
void FlipSome(train::Batch& batch, const std::vector<int64_t>& selected, int64_t image_dim,
              bool segmentation) {
  if (selected.empty()) return;
  const torch::Tensor index = torch::tensor(selected, torch::kLong).to(batch.images.device());
  batch.images.index_copy_(0, index, batch.images.index_select(0, index).flip({image_dim}));
  if (segmentation) {
    // Masks have no channel dimension.
    batch.targets.index_copy_(0, index, batch.targets.index_select(0, index).flip({image_dim - 1}));
  }
}

void ApplyFlips(const AugmentationOptions& o, train::Batch& batch, uint64_t seed,
                bool segmentation) {
  std::vector<int64_t> horizontal, vertical;
  for (int64_t i = 0; i < batch.images.size(0); ++i) {
    // The same draws, in the same order, as DrawWarp makes.
    Rng rng = ImageStream(seed, i, 0);
    if (o.hflip && rng.Coin()) horizontal.push_back(i);
    if (o.vflip && rng.Coin()) vertical.push_back(i);
  }
  FlipSome(batch, horizontal, 3, segmentation);
  FlipSome(batch, vertical, 2, segmentation);
}

void ApplyWarp(const AugmentationOptions& o, train::Batch& batch, uint64_t seed, train::Task task,
               int64_t ignore_index) {
  const torch::Tensor& images = batch.images;
  const int64_t n = images.size(0), height = images.size(2), width = images.size(3);
  std::vector<float> theta;
  theta.reserve(static_cast<size_t>(n) * 6);
  for (int64_t i = 0; i < n; ++i) {
    Rng rng = ImageStream(seed, i, 0);
    const std::array<float, 6> m =
        DrawWarp(o, rng, static_cast<double>(height), static_cast<double>(width));
    theta.insert(theta.end(), m.begin(), m.end());
  }
  const torch::Tensor grid =
      F::affine_grid(torch::tensor(theta, torch::kFloat).view({n, 2, 3}).to(images.device()),
                     {n, 1, height, width}, /*align_corners=*/false)
          .to(images.scalar_type());
  batch.images = F::grid_sample(images, grid,
                                F::GridSampleFuncOptions()
                                    .mode(torch::kBilinear)
                                    .padding_mode(torch::kZeros)
                                    .align_corners(false));
  if (task == train::Task::kClassification) return;

  // Nearest has no integer kernel; float holds every id below 2^24 exactly.
  const auto dtype = batch.targets.scalar_type();
  torch::Tensor masks = batch.targets.to(grid.scalar_type()).unsqueeze(1);
  const bool multiclass = task == train::Task::kMultiClassSegmentation;
  // Multi-class: a channel of ones rides along, so pixels from outside the source (where zero
  // padding leaves it 0) are told apart from class 0 whatever the ignore index is.
  if (multiclass) masks = torch::cat({masks, torch::ones_like(masks)}, 1);
  masks = F::grid_sample(masks, grid,
                         F::GridSampleFuncOptions()
                             .mode(torch::kNearest)
                             .padding_mode(torch::kZeros)
                             .align_corners(false));
  torch::Tensor labels = masks.select(1, 0);
  if (multiclass) {
    labels = torch::where(masks.select(1, 1) > 0.5, labels,
                          torch::full_like(labels, static_cast<double>(ignore_index)));
  }
  batch.targets = labels.to(dtype);
}

// Per-image factors as [B, 1, 1, 1] on `device`, drawn from each image's colour stream in a
// fixed order (brightness, contrast, saturation) so each is independent of the others' options.
struct ColourFactors {
  torch::Tensor brightness, contrast, saturation;
};

ColourFactors DrawColour(const AugmentationOptions& o, int64_t n, uint64_t seed,
                         torch::Device device) {
  std::vector<float> b(static_cast<size_t>(n)), c(b.size()), s(b.size());
  for (int64_t i = 0; i < n; ++i) {
    Rng rng = ImageStream(seed, i, 1);
    b[i] = static_cast<float>(rng.Uniform(1.0 - o.brightness, 1.0 + o.brightness));
    c[i] = static_cast<float>(rng.Uniform(1.0 - o.contrast, 1.0 + o.contrast));
    s[i] = static_cast<float>(rng.Uniform(1.0 - o.saturation, 1.0 + o.saturation));
  }
  auto to_device = [n, device](const std::vector<float>& v) {
    return torch::tensor(v, torch::kFloat).view({n, 1, 1, 1}).to(device);
  };
  return {to_device(b), to_device(c), to_device(s)};
}

// Greyscale [B, 1, H, W] of an RGB batch.
torch::Tensor Grey(const torch::Tensor& rgb) {
  const torch::Tensor weights =
      torch::tensor({kLuma[0], kLuma[1], kLuma[2]}, torch::kFloat).view({1, 3, 1, 1});
  return (rgb * weights.to(rgb.device(), rgb.scalar_type())).sum(1, /*keepdim=*/true);
}

// torchvision's adjust_brightness, adjust_contrast and adjust_saturation, batched: each blends
// with a reference (black, the mean grey, the greyscale image) and clamps to [0, 1].
void ApplyColour(const AugmentationOptions& o, train::Batch& batch, uint64_t seed) {
  torch::Tensor& x = batch.images;
  const int64_t channels = x.size(1);
  const ColourFactors f = DrawColour(o, x.size(0), seed, x.device());
  if (o.brightness > 0.0) x.mul_(f.brightness).clamp_(0.0, 1.0);
  if (o.contrast > 0.0) {
    // The mean of the greyscale image is the luma-weighted sum of the channel means.
    torch::Tensor channel_means = x.mean({2, 3}, /*keepdim=*/true);
    torch::Tensor mean_grey =
        channels == 3 ? Grey(channel_means) : channel_means.mean(1, /*keepdim=*/true);
    x.mul_(f.contrast).add_(mean_grey.mul_(1.0 - f.contrast)).clamp_(0.0, 1.0);
  }
  if (o.saturation > 0.0 && channels == 3) {
    // The greyscale image is taken before x is scaled in place.
    torch::Tensor grey = Grey(x).mul_(1.0 - f.saturation);
    x.mul_(f.saturation).add_(grey).clamp_(0.0, 1.0);
  }
}

}  // namespace

Status ValidateAugmentation(const AugmentationOptions& o) {
  // Written so NaN fails every range check.
  if (!(o.rotation_degrees >= 0.0 && o.rotation_degrees <= 180.0)) {
    return Invalid("rotation_degrees", o.rotation_degrees, "must be in [0, 180]");
  }
  if (!(o.crop_scale_min > 0.0 && o.crop_scale_min <= 1.0)) {
    return Invalid("crop_scale_min", o.crop_scale_min, "must be in (0, 1]");
  }
  if (!(o.crop_scale_max > 0.0 && o.crop_scale_max <= 1.0)) {
    return Invalid("crop_scale_max", o.crop_scale_max, "must be in (0, 1]");
  }
  if (o.crop_scale_min > o.crop_scale_max) {
    return Invalid("crop_scale_min", o.crop_scale_min,
                   "must be <= crop_scale_max (" + Format(o.crop_scale_max) + ")");
  }
  const std::pair<const char*, double> strengths[] = {
      {"brightness", o.brightness}, {"contrast", o.contrast}, {"saturation", o.saturation}};
  for (const auto& [field, value] : strengths) {
    if (!(value >= 0.0 && value <= 1.0)) return Invalid(field, value, "must be in [0, 1]");
  }
  return OkStatus();
}

train::BatchTransform MakeAugmentation(const AugmentationOptions& options, train::Task task,
                                       int64_t ignore_index) {
  const Status status = ValidateAugmentation(options);
  TORCH_CHECK(status.ok(), std::string(status.message()));
  return [options, task, ignore_index](train::Batch& batch, uint64_t seed) {
    if (!options.any() || batch.images.size(0) == 0) return;
    TORCH_CHECK(batch.images.dim() == 4 && batch.images.is_floating_point(),
                "augmentation expects float images [B, C, H, W], got ", batch.images.scalar_type(),
                " ", batch.images.sizes());
    const bool segmentation = task != train::Task::kClassification;
    if (segmentation) {
      TORCH_CHECK(batch.targets.dim() == 3 && batch.targets.size(0) == batch.images.size(0) &&
                      batch.targets.size(1) == batch.images.size(2) &&
                      batch.targets.size(2) == batch.images.size(3),
                  "augmentation expects masks [B, H, W] matching images ", batch.images.sizes(),
                  ", got ", batch.targets.sizes());
    }
    torch::NoGradGuard no_grad;
    if (HasWarp(options)) {
      ApplyWarp(options, batch, seed, task, ignore_index);
    } else if (options.hflip || options.vflip) {
      // Flips alone are exact index operations: cheaper than resampling, and bit-exact.
      ApplyFlips(options, batch, seed, segmentation);
    }
    if (HasColour(options)) ApplyColour(options, batch, seed);
  };
}

}  // namespace selene::data
