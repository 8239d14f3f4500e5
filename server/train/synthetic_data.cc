// Generators draw every random number from a per-image SplitMix64 stream keyed by (seed, image),
// so image i is the same whatever the count, chunking or thread count, and the same with every
// compiler, standard library and LibTorch version (std:: distributions and torch's generators
// promise none of that). All pixel work is batched torch ops over a chunk of images; C++ loops
// only draw scene parameters and fill noise buffers.
#include "server/train/synthetic_data.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <exception>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

// OpenMP's team size for the calling thread alone. Declared weak so the engine links without
// OpenMP too (the address is then null); LibTorch loads the runtime it was built with.
extern "C" void omp_set_num_threads(int) __attribute__((weak));

namespace selene::train {
namespace {

namespace F = torch::nn::functional;

constexpr double kPi = 3.14159265358979323846;

// Stream tags keep the generators' streams apart even under the same seed.
constexpr uint64_t kMoonStream = 0x6d6f6f6eULL;
constexpr uint64_t kShapesStream = 0x73686170ULL;
constexpr uint64_t kShapesSegStream = 0x73656773ULL;
constexpr uint64_t kSplitStream = 0x73706c74ULL;

// SplitMix64: a step of its state, and its output function.
constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

uint64_t Finalize(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t Mix(uint64_t x) { return Finalize(x + kGolden); }

uint64_t StreamSeed(uint64_t seed, uint64_t stream, uint64_t item) {
  return Mix(Mix(Mix(seed) ^ stream) + item);
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}

  uint64_t Next() { return Finalize(state_ += kGolden); }
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  // Inclusive range; the modulo bias is far below anything a data set can show.
  int64_t Int(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(Next() % static_cast<uint64_t>(hi - lo + 1));
  }
  bool Bernoulli(double p) { return Uniform() < p; }
  double Sign() { return Bernoulli(0.5) ? 1.0 : -1.0; }
  // Irwin-Hall of four 16-bit uniforms from one draw: close enough to a unit normal for
  // pixel noise and four times cheaper than Box-Muller.
  float FastNormal() {
    const uint64_t z = Next();
    const double sum = static_cast<double>(z & 0xffff) + static_cast<double>((z >> 16) & 0xffff) +
                       static_cast<double>((z >> 32) & 0xffff) + static_cast<double>(z >> 48);
    return static_cast<float>((sum / 65536.0 - 2.0) * 1.7320508075688772);
  }

 private:
  uint64_t state_;
};

std::vector<Rng> ImageRngs(uint64_t seed, uint64_t stream, int64_t first, int64_t count) {
  std::vector<Rng> rngs;
  rngs.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    rngs.emplace_back(StreamSeed(seed, stream, static_cast<uint64_t>(first + i)));
  }
  return rngs;
}

std::vector<int64_t> WithLeading(int64_t n, const std::vector<int64_t>& shape) {
  std::vector<int64_t> full = {n};
  full.insert(full.end(), shape.begin(), shape.end());
  return full;
}

// [n, shape...] float uniform in [lo, hi); slice i drawn from rngs[i].
torch::Tensor DrawUniform(std::vector<Rng>& rngs, const std::vector<int64_t>& shape, double lo,
                          double hi) {
  const int64_t n = static_cast<int64_t>(rngs.size());
  torch::Tensor out = torch::empty(WithLeading(n, shape), torch::kFloat);
  const int64_t per = n > 0 ? out.numel() / n : 0;
  float* data = out.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < per; ++k) {
      data[i * per + k] = static_cast<float>(rngs[i].Uniform(lo, hi));
    }
  }
  return out;
}

// [n, shape...] float normal with standard deviation `sd`; slice i drawn from rngs[i].
torch::Tensor DrawNormal(std::vector<Rng>& rngs, const std::vector<int64_t>& shape, double sd) {
  const int64_t n = static_cast<int64_t>(rngs.size());
  torch::Tensor out = torch::empty(WithLeading(n, shape), torch::kFloat);
  const int64_t per = n > 0 ? out.numel() / n : 0;
  float* data = out.data_ptr<float>();
  const float s = static_cast<float>(sd);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < per; ++k) data[i * per + k] = s * rngs[i].FastNormal();
  }
  return out;
}

torch::Tensor FloatTensor(const std::vector<float>& values) {
  return torch::tensor(values, torch::kFloat);
}
torch::Tensor LongTensor(const std::vector<int64_t>& values) {
  return torch::tensor(values, torch::kLong);
}

// Smooth value noise: a coarse random grid [n, c, cells, cells] upsampled to size x size.
torch::Tensor Upsample(const torch::Tensor& coarse, int64_t height, int64_t width,
                       bool bicubic = false) {
  F::InterpolateFuncOptions options;
  options.size(std::vector<int64_t>{height, width}).align_corners(true);
  if (bicubic) {
    options.mode(torch::kBicubic);
  } else {
    options.mode(torch::kBilinear);
  }
  return F::interpolate(coarse, options);
}

torch::Tensor ToUint8(const torch::Tensor& unit) {
  return unit.clamp(0.0, 1.0).mul(255.0).round().to(torch::kUInt8);
}

bool StopRequested(const std::atomic<bool>* stop) { return stop != nullptr && stop->load(); }

// Images per chunk (16 at 64 x 64): large enough that per-op overhead is small, small enough
// that a chunk's intermediates stay in cache and in memory malloc keeps (measured: 2^18 pixels
// per chunk made a fresh process 4-10x slower, paying page faults for memory returned and
// reclaimed every chunk).
int64_t ChunkImages(int64_t image_size) {
  return std::max<int64_t>(1, (int64_t{1} << 16) / (image_size * image_size));
}

// ---------------------------------------------------------------------------------------------
// Lunar terrain.
//
// A pinhole camera over a flat ground plane: an image row at height v (0 = top, 1 = bottom) below
// the vanishing line v0 sees the ground at depth z = kDepth / (v - v0), so texture, craters and
// rocks all shrink towards the horizon the way they do in the MOON renders. Above v0 a distant
// ridge of hills, then black sky. The sun is low (as in the renders, which is why rocks cast
// long shadows and slopes facing away from it go black).

constexpr float kDepth = 0.45f;      // z = kDepth / (v - v0)
constexpr float kGroundSpan = 1.8f;  // ground x = (u - 0.5) * z * kGroundSpan
constexpr float kMaxDepth = 40.0f;
constexpr int64_t kTextureTexels = 64;  // smooth terrain fields
constexpr double kTextureSpan = 8.0;    // ground units one texture tile covers
constexpr int64_t kDetailTexels = 48;   // fine texture
constexpr double kDetailSpan = 1.4;

struct MoonScene {
  float v0;         // vanishing line (negative: camera pitched down, no sky in view)
  float ridge;      // height of the distant hills above v0
  float ground;     // terrain albedo
  float far_boost;  // terrain brightens towards the horizon (grazing light on far slopes)
  float relief;     // slope amplitude of the terrain height field
  float detail;     // amplitude of fine texture
  float sky;        // sky grey level
  float tint_r, tint_b;
  float sun_x, sun_y, sun_z;  // towards the sun, world axes: x right, y up, z away from camera
  float shadow_length;        // cast shadow length over rock height
};

struct Rock {
  int64_t image;
  float cx, cy;          // pixel position of the base centre
  float a, top, bottom;  // semi-axes in pixels: horizontal, above and below the base line
  float lump[3], phase[3];
  float albedo;
  float shadow_dx, shadow_dy;  // cast shadow vector in pixels
  float shadow_strength;
};

struct Crater {
  int64_t image;
  float cx, cy, a, b;
  float sun_dx, sun_dy;  // unit direction towards the sun in the image
  float depth;
};

MoonScene DrawScene(Rng& rng) {
  MoonScene s;
  s.v0 = rng.Bernoulli(0.12) ? static_cast<float>(rng.Uniform(-0.5, -0.08))
                             : static_cast<float>(rng.Uniform(0.1, 0.45));
  s.ridge = rng.Bernoulli(0.25) ? 0.0f : static_cast<float>(rng.Uniform(0.02, 0.11));
  s.ground = static_cast<float>(rng.Uniform(0.30, 0.44));
  s.far_boost = static_cast<float>(rng.Uniform(0.1, 0.45));
  s.relief = static_cast<float>(rng.Uniform(0.04, 0.15));
  s.detail = static_cast<float>(rng.Uniform(0.18, 0.38));
  s.sky = static_cast<float>(rng.Uniform(0.0, 0.035));
  const float tint = static_cast<float>(rng.Uniform(-0.045, 0.045));
  s.tint_r = 1.0f + tint;
  s.tint_b = 1.0f - tint + static_cast<float>(rng.Uniform(-0.015, 0.015));
  const double elevation = rng.Uniform(8.0, 38.0) * kPi / 180.0;
  // From the left or the right, mostly from behind the camera (negative azimuth) as in the
  // renders, so rocks show a lit face and a shadow to one side.
  const double azimuth = rng.Uniform(-80.0, 15.0) * kPi / 180.0;
  const double side = rng.Sign();
  s.sun_x = static_cast<float>(side * std::cos(elevation) * std::cos(azimuth));
  s.sun_y = static_cast<float>(std::sin(elevation));
  s.sun_z = static_cast<float>(std::cos(elevation) * std::sin(azimuth));
  s.shadow_length = static_cast<float>(std::min(3.2, 0.8 / std::tan(elevation)));
  return s;
}

// Sizes are kept to about a pixel at least, or the smallest rocks would cover no pixel centre.
void ScaleRock(Rock& r, float grow) {
  r.a = std::max(0.9f, r.a * grow);
  r.top = std::max(0.8f, r.top * grow);
  r.bottom = std::max(0.45f, r.bottom * grow);
}

// Area of the rocks' ellipses inside the image after scaling by `grow` (overlaps counted twice).
double VisibleRockArea(const std::vector<Rock>& rocks, float grow, float size) {
  double area = 0.0;
  for (Rock r : rocks) {
    ScaleRock(r, grow);
    const double width = std::clamp(r.cx + r.a, 0.0f, size) - std::clamp(r.cx - r.a, 0.0f, size);
    const double height =
        std::clamp(r.cy + r.bottom, 0.0f, size) - std::clamp(r.cy - r.top, 0.0f, size);
    area += kPi * 0.25 * width * height;
  }
  return area;
}

// Rock sizes follow the perspective of the base's row; the total area is then held to a band
// so each image has enough rock to learn from and never mostly rock.
std::vector<Rock> DrawRocks(Rng& rng, const MoonScene& s, int64_t image,
                            const SyntheticMoonOptions& options) {
  const float size = static_cast<float>(options.image_size);
  const int64_t count = rng.Int(options.min_rocks, std::max(options.min_rocks, options.max_rocks));
  const float lowest = std::max(s.v0, 0.0f) + 0.02f;
  const float horiz_x = s.sun_x / std::max(1e-3f, std::hypot(s.sun_x, s.sun_z));
  const float horiz_z = s.sun_z / std::max(1e-3f, std::hypot(s.sun_x, s.sun_z));
  std::vector<Rock> rocks;
  for (int64_t k = 0; k < count; ++k) {
    Rock r{};
    r.image = image;
    const float v = static_cast<float>(rng.Uniform(lowest, 1.04));
    const float dz = v - s.v0;
    r.cx = static_cast<float>(rng.Uniform(-0.04, 1.04)) * size;
    r.cy = v * size;
    // Log-uniform world radius skewed to small rocks: many pebbles, few boulders.
    const double world = 0.012 * std::pow(12.0, std::pow(rng.Uniform(), 1.7));
    r.a = static_cast<float>(world * size * dz / (kDepth * kGroundSpan));
    r.top = r.a * static_cast<float>(rng.Uniform(0.55, 1.05));
    r.bottom = r.a * static_cast<float>(rng.Uniform(0.22, 0.45));
    for (int j = 0; j < 3; ++j) {
      r.lump[j] = static_cast<float>(rng.Uniform(0.0, j == 0 ? 0.1 : 0.07));
      r.phase[j] = static_cast<float>(rng.Uniform(0.0, 2.0 * kPi));
    }
    r.albedo = static_cast<float>(rng.Uniform(0.62, 0.95));
    // On the ground, depth differences shrink vertically by about 1.8 * (v - v0) relative to
    // widths, so shadows cast towards or away from the camera stay short in the image.
    r.shadow_dx = -horiz_x;
    r.shadow_dy = horiz_z * std::min(1.0f, kGroundSpan * dz);
    r.shadow_strength = static_cast<float>(rng.Uniform(0.6, 0.85));
    rocks.push_back(r);
  }
  // Grow or shrink all rocks together until the part inside the image covers the drawn share
  // of the ground (bisection: the covered area grows with the scale).
  const double ground_pixels =
      size * size * std::clamp(1.0 - std::max(0.0f, s.v0 - 0.5f * s.ridge), 0.3, 1.0);
  const double target = std::min(size * size * rng.Uniform(0.045, 0.13), 0.35 * ground_pixels);
  double lo = 0.5, hi = 6.0;
  for (int iteration = 0; iteration < 20; ++iteration) {
    const double mid = 0.5 * (lo + hi);
    (VisibleRockArea(rocks, static_cast<float>(mid), size) < target ? lo : hi) = mid;
  }
  const float grow = static_cast<float>(0.5 * (lo + hi));
  for (Rock& r : rocks) {
    ScaleRock(r, grow);
    const float length = s.shadow_length * r.top;
    r.shadow_dx *= length;
    r.shadow_dy *= length;
  }
  // Painter's order: far (higher in the image) first, so near rocks cover far ones.
  std::stable_sort(rocks.begin(), rocks.end(),
                   [](const Rock& x, const Rock& y) { return x.cy < y.cy; });
  return rocks;
}

std::vector<Crater> DrawCraters(Rng& rng, const MoonScene& s, int64_t image, int64_t size) {
  const int64_t count = rng.Int(0, 3);
  const float lowest = std::max(s.v0, 0.0f) + 0.04f;
  const float to_sun_x = s.sun_x, to_sun_y = -s.sun_z;  // far side of the scene is up
  std::vector<Crater> craters;
  for (int64_t k = 0; k < count; ++k) {
    Crater c{};
    c.image = image;
    const float v = static_cast<float>(rng.Uniform(lowest, 1.02));
    const float dz = v - s.v0;
    c.cx = static_cast<float>(rng.Uniform(0.0, 1.0)) * size;
    c.cy = v * size;
    const double world = rng.Uniform(0.05, 0.22);
    c.a = std::max(2.0f, static_cast<float>(world * size * dz / (kDepth * kGroundSpan)));
    c.b = c.a * std::clamp(kGroundSpan * dz, 0.2f, 0.9f);
    const float fy = to_sun_y * std::min(1.0f, kGroundSpan * dz);
    const float norm = std::max(1e-3f, std::hypot(to_sun_x, fy));
    c.sun_dx = to_sun_x / norm;
    c.sun_dy = fy / norm;
    c.depth = static_cast<float>(rng.Uniform(0.35, 0.7));
    craters.push_back(c);
  }
  return craters;
}

// Ground textures tile by mirroring (continuous, no seams) over the whole, unbounded plane.
struct Sampled {
  torch::Tensor values;          // [n, C, H, W]
  torch::Tensor flip_x, flip_z;  // [n, H, W]: +1 or -1, the sign mirroring gives to slopes
};

// Samples a [n, C, T, T] texture stack at ground coordinates, the texture spanning `span`
// ground units before it mirrors (bilinear: the fields are smooth already).
Sampled SampleGround(const torch::Tensor& texture, const torch::Tensor& gx, const torch::Tensor& gz,
                     double span, double offset) {
  const double scale = 2.0 / span;
  torch::Tensor tx = torch::remainder(gx * scale + offset + 1.0, 4.0);
  torch::Tensor tz = torch::remainder(gz * scale - offset + 1.0, 4.0);
  torch::Tensor grid = torch::stack({1.0 - (tx - 2.0).abs(), 1.0 - (tz - 2.0).abs()}, -1);
  Sampled s;
  s.values = F::grid_sample(texture, grid,
                            F::GridSampleFuncOptions()
                                .mode(torch::kBilinear)
                                .padding_mode(torch::kBorder)
                                .align_corners(false));
  s.flip_x = (2.0 - tx).sign();
  s.flip_z = (2.0 - tz).sign();
  return s;
}

// Sprites (rocks with their shadows, craters) are rendered in a patch around each one, every
// sprite of one patch size in one set of batched ops. Where sprites overlap, the write with the
// highest priority (a rock's depth order, a shadow's strength) wins: Winners() sorts the writes
// by (pixel, priority) and keeps the last of each pixel, so the result never depends on write
// order (index_put_ with repeated indices has no defined winner).
struct SpriteBox {
  int64_t x0 = 0, y0 = 0;  // top-left pixel of the patch, inside the image
  int64_t width = 0, height = 0;
};

// Patch sides are powers of two, so sprites share batches (few, large batches are what makes
// torch fast) but none pays much for another's size: a pebble's patch is 4 x 4, a boulder's
// long shadow gets a wide, flat one.
int64_t PatchSize(int64_t extent) {
  int64_t side = 4;
  while (side < extent) side *= 2;
  return side;
}

// The box [x_lo, x_hi] x [y_lo, y_hi] (pixels) clipped to the image, as a patch; nullopt when
// nothing is left.
std::optional<SpriteBox> ClipBox(float x_lo, float x_hi, float y_lo, float y_hi, int64_t size) {
  const int64_t x0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(x_lo)));
  const int64_t y0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(y_lo)));
  const int64_t x1 = std::min<int64_t>(size, static_cast<int64_t>(std::ceil(x_hi)));
  const int64_t y1 = std::min<int64_t>(size, static_cast<int64_t>(std::ceil(y_hi)));
  if (x1 <= x0 || y1 <= y0) return std::nullopt;
  return SpriteBox{x0, y0, PatchSize(x1 - x0), PatchSize(y1 - y0)};
}

// Sprite indices grouped by patch size.
std::map<std::pair<int64_t, int64_t>, std::vector<int64_t>> GroupBySize(
    const std::vector<std::optional<SpriteBox>>& boxes) {
  std::map<std::pair<int64_t, int64_t>, std::vector<int64_t>> groups;
  for (size_t i = 0; i < boxes.size(); ++i) {
    if (boxes[i]) groups[{boxes[i]->height, boxes[i]->width}].push_back(static_cast<int64_t>(i));
  }
  return groups;
}

struct Patches {
  torch::Tensor dx, dy;  // float [M, Ph, Pw]: pixel centre minus sprite centre
  torch::Tensor dest;    // int64 [M, Ph, Pw]: flat pixel index in the chunk (clamped)
  torch::Tensor valid;   // bool [M, Ph, Pw]: inside the image
};

// Patches for the sprites `ids` (all of one patch size).
Patches MakePatches(const std::vector<int64_t>& ids,
                    const std::vector<std::optional<SpriteBox>>& boxes,
                    const std::vector<int64_t>& image, const std::vector<float>& cx,
                    const std::vector<float>& cy, int64_t size) {
  const int64_t m = static_cast<int64_t>(ids.size());
  const int64_t ph = boxes[ids[0]]->height, pw = boxes[ids[0]]->width;
  std::vector<int64_t> x0(m), y0(m), img(m);
  std::vector<float> sx(m), sy(m);
  for (int64_t k = 0; k < m; ++k) {
    const int64_t i = ids[k];
    x0[k] = boxes[i]->x0;
    y0[k] = boxes[i]->y0;
    img[k] = image[i];
    sx[k] = cx[i];
    sy[k] = cy[i];
  }
  torch::Tensor px =
      (LongTensor(x0).view({m, 1, 1}) + torch::arange(pw, torch::kLong).view({1, 1, pw}))
          .expand({m, ph, pw});
  torch::Tensor py =
      (LongTensor(y0).view({m, 1, 1}) + torch::arange(ph, torch::kLong).view({1, ph, 1}))
          .expand({m, ph, pw});
  Patches p;
  p.dx = px.to(torch::kFloat) + 0.5 - FloatTensor(sx).view({m, 1, 1});
  p.dy = py.to(torch::kFloat) + 0.5 - FloatTensor(sy).view({m, 1, 1});
  p.valid = (px < size) & (py < size);  // boxes start inside the image
  p.dest = LongTensor(img).view({m, 1, 1}) * (size * size) + py.clamp_max(size - 1) * size +
           px.clamp_max(size - 1);
  return p;
}

constexpr int64_t kPriorityLevels = int64_t{1} << 16;

torch::Tensor Quantise(const torch::Tensor& unit) {
  return (unit.clamp(0.0, 1.0) * (kPriorityLevels - 1)).round().to(torch::kLong);
}
torch::Tensor Dequantise(const torch::Tensor& levels) {
  return levels.to(torch::kFloat) / static_cast<double>(kPriorityLevels - 1);
}

// Of the writes (destination, priority in [0, kPriorityLevels)), the indices of those that win
// their destination: the highest priority there.
torch::Tensor Winners(const torch::Tensor& dest, const torch::Tensor& priority) {
  const int64_t count = dest.numel();
  if (count == 0) return torch::zeros({0}, torch::kLong);
  torch::Tensor order = std::get<1>((dest * kPriorityLevels + priority).sort());
  torch::Tensor sorted = dest.index_select(0, order);
  torch::Tensor last = torch::ones({count}, torch::kBool);
  last.narrow(0, 0, count - 1)
      .copy_(sorted.narrow(0, 1, count - 1) != sorted.narrow(0, 0, count - 1));
  return order.masked_select(last);
}

// Writes, for each destination, the largest value in [0, 1] written there (to 1/65535).
void WriteMax(torch::Tensor& target, const std::vector<torch::Tensor>& dests,
              const std::vector<torch::Tensor>& values) {
  if (dests.empty()) return;
  torch::Tensor dest = torch::cat(dests), level = Quantise(torch::cat(values));
  torch::Tensor win = Winners(dest, level);
  target.index_put_({dest.index_select(0, win)}, Dequantise(level.index_select(0, win)));
}

// Per-sprite values of a group as a [M, 1, 1] column, ready to broadcast over its patches.
template <typename T>
torch::Tensor Column(const std::vector<int64_t>& ids, const std::vector<T>& values) {
  std::vector<T> picked(ids.size());
  for (size_t k = 0; k < ids.size(); ++k) picked[k] = values[ids[k]];
  return torch::tensor(picked).view({static_cast<int64_t>(ids.size()), 1, 1});
}

struct RockLayer {
  torch::Tensor mask;    // float [n*H*W]: 1 on visible rock
  torch::Tensor value;   // float [n*H*W]: rock shading where mask
  torch::Tensor shadow;  // float [n*H*W]: cast shadow strength
};

// Renders the rocks of a chunk, given in painter's order within each image.
RockLayer RenderRocks(const std::vector<Rock>& rocks, const std::vector<MoonScene>& scenes,
                      const torch::Tensor& grain, int64_t n, int64_t size) {
  const int64_t pixels = n * size * size;
  RockLayer out;
  out.mask = torch::zeros({pixels}, torch::kFloat);
  out.value = torch::zeros({pixels}, torch::kFloat);
  out.shadow = torch::zeros({pixels}, torch::kFloat);
  const torch::Tensor grain_flat = grain.flatten();

  const size_t count = rocks.size();
  std::vector<std::optional<SpriteBox>> boxes(count);
  std::vector<int64_t> image(count), rank(count);
  std::vector<float> cx(count), cy(count), a(count), top(count), bottom(count), albedo(count),
      sdx(count), sdy(count), sst(count), lx(count), ly(count), lz(count), shadow_h(count);
  std::array<std::vector<float>, 3> lump, phase;
  for (int j = 0; j < 3; ++j) {
    lump[j].resize(count);
    phase[j].resize(count);
  }
  for (size_t i = 0; i < count; ++i) {
    const Rock& r = rocks[i];
    const MoonScene& s = scenes[r.image];
    image[i] = r.image;
    rank[i] = (i > 0 && rocks[i - 1].image == r.image) ? rank[i - 1] + 1 : 0;
    cx[i] = r.cx;
    cy[i] = r.cy;
    a[i] = r.a;
    top[i] = r.top;
    bottom[i] = r.bottom;
    albedo[i] = r.albedo;
    sdx[i] = r.shadow_dx;
    sdy[i] = r.shadow_dy;
    sst[i] = r.shadow_strength;
    shadow_h[i] = 1.2f * r.bottom + 0.6f;
    // Camera axes (x right, y down, z towards the camera) from world (y up, z away).
    lx[i] = s.sun_x;
    ly[i] = -s.sun_y;
    lz[i] = -s.sun_z;
    for (int j = 0; j < 3; ++j) {
      lump[j][i] = r.lump[j];
      phase[j][i] = r.phase[j];
    }
    // Body (lumps reach 1.3 radii) and the shadow capsule.
    const float reach = 1.3f * r.a + 1.0f;
    boxes[i] =
        ClipBox(r.cx + std::min(-reach, r.shadow_dx - r.a - 1.0f),
                r.cx + std::max(reach, r.shadow_dx + r.a + 1.0f),
                r.cy + std::min(-1.3f * r.top - 1.0f, r.shadow_dy - shadow_h[i] - 1.0f),
                r.cy + std::max(1.3f * r.bottom + 1.0f, r.shadow_dy + shadow_h[i] + 1.0f), size);
  }

  std::vector<torch::Tensor> body_dest, body_rank, body_value, shadow_dest, shadow_value;
  for (const auto& [patch_size, ids] : GroupBySize(boxes)) {
    auto col = [&ids](const std::vector<float>& v) { return Column(ids, v); };
    Patches g = MakePatches(ids, boxes, image, cx, cy, size);

    // Body: an ellipse with a taller top half (a dome seen from the side) and a lumpy outline.
    torch::Tensor un = g.dx / col(a);
    torch::Tensor vn = g.dy / torch::where(g.dy < 0, col(top), col(bottom));
    torch::Tensor rho = torch::sqrt(un * un + vn * vn);
    torch::Tensor theta = torch::atan2(vn, un);
    torch::Tensor limit = 1.0 + col(lump[0]) * torch::sin(2.0 * theta + col(phase[0])) +
                          col(lump[1]) * torch::sin(3.0 * theta + col(phase[1])) +
                          col(lump[2]) * torch::sin(5.0 * theta + col(phase[2]));
    torch::Tensor inside = (rho < limit) & g.valid;
    torch::Tensor q = (rho / limit).clamp_max(1.0);
    torch::Tensor noise = grain_flat.index_select(0, g.dest.flatten()).view_as(g.dx) - 0.5;
    torch::Tensor nx = un / limit + 0.35 * noise;
    torch::Tensor ny = vn / limit - 0.25 * noise;
    torch::Tensor nz = torch::sqrt((1.0 - q * q).clamp_min(0.0)) + 0.15;
    torch::Tensor lambert =
        ((nx * col(lx) + ny * col(ly) + nz * col(lz)) / torch::sqrt(nx * nx + ny * ny + nz * nz))
            .clamp_min(0.0);
    torch::Tensor value = col(albedo) * (0.14 + 1.0 * lambert) * (0.9 + 0.25 * noise);
    body_dest.push_back(g.dest.masked_select(inside));
    body_rank.push_back(Column(ids, rank).expand_as(g.dest).masked_select(inside));
    body_value.push_back(value.masked_select(inside));

    // Cast shadow: the flattened base ellipse swept along the shadow vector (a capsule in
    // normalised coordinates), fading with distance from the rock.
    torch::Tensor h = col(shadow_h);
    torch::Tensor qx = g.dx / col(a), qy = g.dy / h;
    torch::Tensor sx = col(sdx) / col(a), sy = col(sdy) / h;
    torch::Tensor t = ((qx * sx + qy * sy) / (sx * sx + sy * sy + 1e-6)).clamp(0.0, 1.0);
    torch::Tensor dist = torch::sqrt((qx - t * sx).pow(2) + (qy - t * sy).pow(2));
    torch::Tensor edge = ((1.0 - dist) * torch::min(col(a), h) + 0.5).clamp(0.0, 1.0);
    torch::Tensor shadow = col(sst) * (1.0 - 0.45 * t) * edge;
    torch::Tensor cast = (shadow > 0) & g.valid;
    shadow_dest.push_back(g.dest.masked_select(cast));
    shadow_value.push_back(shadow.masked_select(cast));
  }
  WriteMax(out.shadow, shadow_dest, shadow_value);
  if (!body_dest.empty()) {
    // Nearer rocks (higher rank) cover farther ones.
    torch::Tensor dest = torch::cat(body_dest), value = torch::cat(body_value);
    torch::Tensor win = Winners(dest, torch::cat(body_rank));
    torch::Tensor where = dest.index_select(0, win);
    out.value.index_put_({where}, value.index_select(0, win));
    out.mask.index_fill_(0, where, 1.0);
  }
  return out;
}

// Craters: bowls with the wall towards the sun in shadow and the far wall and the rim lit.
// They are bright-and-dark like rocks but are terrain, so brightness alone cannot find rocks.
// Returns a multiplicative terrain modulation [n*H*W] around 0.
torch::Tensor RenderCraters(const std::vector<Crater>& craters, int64_t n, int64_t size) {
  const int64_t pixels = n * size * size;
  torch::Tensor bright = torch::zeros({pixels}, torch::kFloat);
  torch::Tensor dark = torch::zeros({pixels}, torch::kFloat);
  const size_t count = craters.size();
  std::vector<std::optional<SpriteBox>> boxes(count);
  std::vector<int64_t> image(count);
  std::vector<float> cx(count), cy(count), a(count), b(count), sx(count), sy(count), depth(count);
  for (size_t k = 0; k < count; ++k) {
    const Crater& c = craters[k];
    image[k] = c.image;
    cx[k] = c.cx;
    cy[k] = c.cy;
    a[k] = c.a;
    b[k] = c.b;
    sx[k] = c.sun_dx;
    sy[k] = c.sun_dy;
    depth[k] = c.depth;
    boxes[k] = ClipBox(c.cx - 1.4f * c.a - 1.0f, c.cx + 1.4f * c.a + 1.0f, c.cy - 1.4f * c.b - 1.0f,
                       c.cy + 1.4f * c.b + 1.0f, size);
  }
  std::vector<torch::Tensor> bright_dest, bright_value, dark_dest, dark_value;
  for (const auto& [patch_size, ids] : GroupBySize(boxes)) {
    auto col = [&ids](const std::vector<float>& v) { return Column(ids, v); };
    Patches g = MakePatches(ids, boxes, image, cx, cy, size);
    torch::Tensor un = g.dx / col(a), vn = g.dy / col(b);
    torch::Tensor rho = torch::sqrt(un * un + vn * vn);
    torch::Tensor facing = (un * col(sx) + vn * col(sy)) / rho.clamp_min(1e-3);
    torch::Tensor interior = -col(depth) * facing * rho.pow(1.5);
    torch::Tensor rim_profile = (1.0 - (rho - 1.12).abs() / 0.22).clamp_min(0.0);
    torch::Tensor rim = 0.6 * col(depth) * facing.clamp_min(0.0) * rim_profile;
    torch::Tensor mod = torch::where(rho < 1.0, interior, rim);
    torch::Tensor lit = (mod > 0) & g.valid, shaded = (mod < 0) & g.valid;
    bright_dest.push_back(g.dest.masked_select(lit));
    bright_value.push_back(mod.masked_select(lit));
    dark_dest.push_back(g.dest.masked_select(shaded));
    dark_value.push_back(-mod.masked_select(shaded));
  }
  WriteMax(bright, bright_dest, bright_value);
  WriteMax(dark, dark_dest, dark_value);
  return bright - dark;
}

std::pair<torch::Tensor, torch::Tensor> RenderMoonChunk(const SyntheticMoonOptions& options,
                                                        int64_t first, int64_t n) {
  const int64_t size = options.image_size;
  std::vector<Rng> rngs = ImageRngs(options.seed, kMoonStream, first, n);
  std::vector<MoonScene> scenes;
  std::vector<Rock> rocks;
  std::vector<Crater> craters;
  for (int64_t i = 0; i < n; ++i) {
    scenes.push_back(DrawScene(rngs[i]));
    std::vector<Rock> r = DrawRocks(rngs[i], scenes.back(), i, options);
    rocks.insert(rocks.end(), r.begin(), r.end());
    std::vector<Crater> c = DrawCraters(rngs[i], scenes.back(), i, size);
    craters.insert(craters.end(), c.begin(), c.end());
  }
  // Noise fields, drawn per image after the scene parameters: coarse random grids whose cell
  // counts set the feature sizes (over kTextureSpan ground units), then per-pixel noise.
  torch::Tensor coarse_albedo = DrawUniform(rngs, {1, 8, 8}, 0.0, 1.0);
  torch::Tensor coarse_patches = DrawUniform(rngs, {1, 14, 14}, 0.0, 1.0);
  torch::Tensor coarse_height = DrawUniform(rngs, {1, 20, 20}, 0.0, 1.0);
  torch::Tensor tex_detail = DrawUniform(rngs, {1, kDetailTexels, kDetailTexels}, 0.0, 1.0);
  torch::Tensor hills = DrawUniform(rngs, {1, 1, 6}, 0.0, 1.0);
  torch::Tensor coarse_hill_texture = DrawUniform(rngs, {1, 6, 12}, 0.0, 1.0);
  torch::Tensor grain = DrawUniform(rngs, {size, size}, 0.0, 1.0);
  torch::Tensor camera = DrawNormal(rngs, {3, size, size}, 1.0);

  std::vector<float> v0(n), ridge(n), ground(n), far_boost(n), relief(n), detail(n), sky(n),
      tint_r(n), tint_b(n), sun_x(n), sun_y(n), sun_z(n);
  for (int64_t i = 0; i < n; ++i) {
    const MoonScene& s = scenes[i];
    v0[i] = s.v0;
    ridge[i] = s.ridge;
    ground[i] = s.ground;
    far_boost[i] = s.far_boost;
    relief[i] = s.relief;
    detail[i] = s.detail;
    sky[i] = s.sky;
    tint_r[i] = s.tint_r;
    tint_b[i] = s.tint_b;
    sun_x[i] = s.sun_x;
    sun_y[i] = s.sun_y;
    sun_z[i] = s.sun_z;
  }
  auto col = [n](const std::vector<float>& v) { return FloatTensor(v).view({n, 1, 1}); };

  const torch::Tensor centres = (torch::arange(size, torch::kFloat) + 0.5) / size;
  const torch::Tensor u = centres.view({1, 1, size}).expand({n, size, size});
  const torch::Tensor v = centres.view({1, size, 1}).expand({n, size, size});

  // Ground plane coordinates.
  torch::Tensor dz = (v - col(v0)).clamp_min(kDepth / kMaxDepth);
  torch::Tensor z = kDepth / dz;
  torch::Tensor gx = (u - 0.5) * z * kGroundSpan;
  torch::Tensor gz = z;
  // Ground under one pixel (the larger of its width and its foreshortened depth). Features
  // finer than a couple of pixels fade out instead of aliasing into noise near the horizon.
  torch::Tensor footprint = torch::max(z * kGroundSpan, z * z / kDepth) / size;
  auto resolved = [&footprint](double features_per_unit) {
    return 1.0 / (1.0 + (footprint * (4.0 * features_per_unit)).pow(2));
  };

  // One texture stack sampled once: smooth albedo, bright-patch and height-slope fields
  // (bicubic upsampling of the coarse grids, so slopes are continuous), then the fine detail.
  const double per_unit = kTextureTexels / kTextureSpan;  // texels per ground unit
  torch::Tensor height = Upsample(coarse_height, kTextureTexels, kTextureTexels, true);
  torch::Tensor padded = F::pad(height, F::PadFuncOptions({1, 1, 1, 1}).mode(torch::kReplicate));
  torch::Tensor height_dx = (padded.narrow(2, 1, kTextureTexels).narrow(3, 2, kTextureTexels) -
                             padded.narrow(2, 1, kTextureTexels).narrow(3, 0, kTextureTexels)) *
                            (0.5 * per_unit);
  torch::Tensor height_dz = (padded.narrow(3, 1, kTextureTexels).narrow(2, 2, kTextureTexels) -
                             padded.narrow(3, 1, kTextureTexels).narrow(2, 0, kTextureTexels)) *
                            (0.5 * per_unit);
  torch::Tensor stack = torch::cat(
      {Upsample(coarse_albedo, kTextureTexels, kTextureTexels, true),
       Upsample(coarse_patches, kTextureTexels, kTextureTexels, true), height_dx, height_dz},
      1);
  Sampled fields = SampleGround(stack, gx, gz, kTextureSpan, 0.0);
  torch::Tensor fine = SampleGround(tex_detail, gx, gz, kDetailSpan, 0.7).values.squeeze(1);

  // Albedo: broad variation plus bright regolith patches (ejecta), which are not rocks.
  torch::Tensor albedo =
      1.0 + 0.6 * (fields.values.select(1, 0) - 0.5) * resolved(8.0 / kTextureSpan);
  torch::Tensor patches =
      (fields.values.select(1, 1) - 0.6).clamp_min(0.0) * resolved(14.0 / kTextureSpan);
  albedo = albedo * (1.0 + 2.2 * patches);

  // Relief shading: Lambert on the slope of the height field, relative to flat ground, so
  // slopes facing away from the low sun go dark and those facing it brighten.
  torch::Tensor relief_gain = col(relief) * resolved(20.0 / kTextureSpan);
  torch::Tensor slope_x = fields.values.select(1, 2) * fields.flip_x * relief_gain;
  torch::Tensor slope_z = fields.values.select(1, 3) * fields.flip_z * relief_gain;
  torch::Tensor shade = (col(sun_y) - slope_x * col(sun_x) - slope_z * col(sun_z)) /
                        (torch::sqrt(1.0 + slope_x * slope_x + slope_z * slope_z) * col(sun_y));
  shade = shade.clamp(0.0, 1.7);
  // Self-shadowed hollows go nearly black, as in the renders.
  shade = torch::where(shade < 0.3, shade * 0.3, shade);

  torch::Tensor grain_img = grain.view({n, size, size});
  torch::Tensor texture = (fine - 0.5) * resolved(0.5 * kDetailTexels / kDetailSpan);
  texture = col(detail) * (texture + 0.5 * (grain_img - 0.5));
  torch::Tensor far = 1.0 + col(far_boost) * torch::exp(-dz / 0.15);

  torch::Tensor terrain = col(ground) * albedo * shade * far * (1.0 + texture);
  torch::Tensor crater_mod = RenderCraters(craters, n, size);
  terrain = terrain * (1.0 + crater_mod.view({n, size, size}));
  // Pebbles too small to label: single bright pixels on the near ground.
  terrain = terrain + 0.2 * (grain_img > 0.998).to(torch::kFloat) * resolved(1.0);

  // Distant hills: a smooth ridge line above v0, lit on the slopes that face the sun.
  torch::Tensor profile = F::interpolate(hills, F::InterpolateFuncOptions()
                                                    .size(std::vector<int64_t>{1, size})
                                                    .mode(torch::kBicubic)
                                                    .align_corners(true))
                              .view({n, 1, size})
                              .clamp(0.0, 1.0);
  torch::Tensor skyline = col(v0) - col(ridge) * (0.2 + 0.8 * profile);
  torch::Tensor profile_slope =
      torch::cat({profile.narrow(2, 1, size - 1) - profile.narrow(2, 0, size - 1),
                  torch::zeros({n, 1, 1})},
                 2) *
      size;
  torch::Tensor hill_light = (1.0 - 1.5 * profile_slope * col(sun_x) * col(ridge)).clamp(0.7, 1.3);
  torch::Tensor hill_depth = ((v - skyline) / (col(v0) - skyline + 1e-3)).clamp(0.0, 1.0);
  torch::Tensor hill_texture = Upsample(coarse_hill_texture, size, size, false).squeeze(1);
  torch::Tensor hill = col(ground) * (1.1 + col(far_boost)) * hill_light *
                       (1.0 - 0.2 * hill_depth) * (1.0 + 0.4 * col(detail) * (hill_texture - 0.5));
  // Fraction of each pixel below the skyline: an anti-aliased ridge, not a staircase.
  torch::Tensor land = ((v - skyline) * size + 0.5).clamp(0.0, 1.0);
  torch::Tensor is_sky = land <= 0.0;
  torch::Tensor is_hill = (v < col(v0)) & ~is_sky;

  RockLayer rock = RenderRocks(rocks, scenes, grain, n, size);
  auto image_view = [&](const torch::Tensor& flat) { return flat.view({n, size, size}); };
  torch::Tensor shadow = image_view(rock.shadow);
  torch::Tensor is_rock = image_view(rock.mask) > 0.5;
  torch::Tensor rock_value = image_view(rock.value);

  torch::Tensor sky_value = col(sky) + 0.006 * camera.select(1, 0).abs();
  torch::Tensor grey = torch::where(is_hill, hill, terrain);
  grey = grey * (1.0 - shadow * land);
  grey = sky_value + (grey - sky_value) * land;
  grey = torch::where(is_rock, rock_value, grey);
  grey = grey + 0.018 * camera.select(1, 1);

  // Near-grey colour: one tint per image plus a little chroma noise.
  torch::Tensor tint = torch::stack({col(tint_r), torch::ones({n, 1, 1}), col(tint_b)}, 1);
  torch::Tensor rgb = grey.unsqueeze(1) * tint + 0.006 * camera;
  return {ToUint8(rgb), is_rock.to(torch::kUInt8)};
}

// ---------------------------------------------------------------------------------------------
// Shapes.

const std::array<const char*, 12> kShapeNames = {"disc",     "square",  "triangle", "cross",
                                                 "ring",     "diamond", "star",     "hexagon",
                                                 "crescent", "bars",    "chevron",  "frame"};

// Twelve well separated colours; class c draws from palettes c and c+1 (mod K, spread over
// the twelve), so every palette is shared by two classes and mean colour cannot separate them.
const std::array<std::array<float, 3>, 12> kPalette = {{{0.86f, 0.18f, 0.16f},
                                                        {0.95f, 0.55f, 0.10f},
                                                        {0.92f, 0.86f, 0.18f},
                                                        {0.55f, 0.85f, 0.20f},
                                                        {0.12f, 0.62f, 0.28f},
                                                        {0.10f, 0.70f, 0.70f},
                                                        {0.35f, 0.65f, 0.95f},
                                                        {0.18f, 0.28f, 0.85f},
                                                        {0.55f, 0.25f, 0.80f},
                                                        {0.86f, 0.25f, 0.70f},
                                                        {0.96f, 0.62f, 0.72f},
                                                        {0.88f, 0.88f, 0.86f}}};

enum Texture { kFlat = 0, kStripes = 1, kChecks = 2, kMottled = 3 };

struct ShapeInstance {
  int64_t image;
  int64_t cls;
  float cx, cy, scale, angle, aspect_x, aspect_y;
  int texture;
  float tex_frequency, tex_angle, tex_phase;
  std::array<float, 3> colour, second;
};

int64_t PaletteIndex(int64_t palette, int64_t num_classes) {
  return (palette % num_classes) * 12 / num_classes;
}

ShapeInstance DrawShape(Rng& rng, int64_t image, int64_t cls, int64_t num_classes, int64_t size,
                        double min_scale, double max_scale, double margin) {
  ShapeInstance s{};
  s.image = image;
  s.cls = cls;
  s.scale = static_cast<float>(rng.Uniform(min_scale, max_scale) * size);
  const double lo = std::min(0.5 * size, margin * s.scale);
  s.cx = static_cast<float>(rng.Uniform(lo, size - lo));
  s.cy = static_cast<float>(rng.Uniform(lo, size - lo));
  // Small rotations only: a square turned by 45 degrees is a diamond.
  s.angle = static_cast<float>(rng.Uniform(-0.3, 0.3));
  s.aspect_x = static_cast<float>(rng.Uniform(0.85, 1.15));
  s.aspect_y = static_cast<float>(rng.Uniform(0.85, 1.15));
  // Each class prefers two textures, with the odd other one.
  const int preferred[2] = {static_cast<int>(cls % 4), static_cast<int>((cls + 2) % 4)};
  s.texture = rng.Bernoulli(0.85) ? preferred[rng.Int(0, 1)] : static_cast<int>(rng.Int(0, 3));
  s.tex_frequency = static_cast<float>(rng.Uniform(0.55, 0.95));
  s.tex_angle = static_cast<float>(rng.Uniform(0.0, kPi));
  s.tex_phase = static_cast<float>(rng.Uniform(0.0, 2.0 * kPi));
  const int64_t palette = PaletteIndex(cls + rng.Int(0, 1), num_classes);
  for (int c = 0; c < 3; ++c) {
    s.colour[c] =
        std::clamp(kPalette[palette][c] + static_cast<float>(rng.Uniform(-0.1, 0.1)), 0.0f, 1.0f);
    s.second[c] = 0.45f * s.colour[c] + static_cast<float>(rng.Uniform(0.0, 0.12));
  }
  return s;
}

// Signed distance-like function of each shape in its local frame (unit ~ the shape's radius),
// negative inside. Not exact distances everywhere, but close near the outline, where they set
// the anti-aliasing.
torch::Tensor ShapeDistance(int64_t cls, const torch::Tensor& u, const torch::Tensor& v) {
  const torch::Tensor au = u.abs(), av = v.abs();
  const torch::Tensor r = torch::sqrt(u * u + v * v);
  switch (cls) {
    case 0:  // disc
      return r - 0.85;
    case 1:  // square
      return torch::max(au, av) - 0.72;
    case 2:  // triangle, pointing up
      return torch::max(v - 0.45, 0.866 * au - 0.5 * v - 0.5);
    case 3:  // cross
      return torch::min(torch::max(au - 0.85, av - 0.26), torch::max(au - 0.26, av - 0.85));
    case 4:  // ring
      return (r - 0.62).abs() - 0.24;
    case 5:  // diamond
      return (au + av - 0.95) * 0.7071;
    case 6: {  // five-pointed star, a point up
      torch::Tensor phi = torch::atan2(v, u) + 0.5 * kPi;
      torch::Tensor t = torch::remainder(phi * (5.0 / (2.0 * kPi)), 1.0);
      torch::Tensor tri = (2.0 * t - 1.0).abs();
      return (r - (0.36 + 0.6 * tri * tri)) * 0.6;
    }
    case 7:  // hexagon
      return torch::max(0.866 * au + 0.5 * av, av) - 0.78;
    case 8:  // crescent
      return torch::max(r - 0.85, 0.62 - torch::sqrt((u - 0.38).pow(2) + (v + 0.12).pow(2)));
    case 9: {  // three bars
      torch::Tensor bar =
          torch::min(torch::min((v + 0.58).abs(), v.abs()), (v - 0.58).abs()) - 0.15;
      return torch::max(au - 0.85, bar);
    }
    case 10:  // chevron
      return torch::max((v - 0.75 * au + 0.25).abs() * 0.8 - 0.2, au - 0.85);
    default:  // frame
      return torch::max(torch::max(au, av) - 0.8, 0.46 - torch::max(au, av));
  }
}

struct ShapeLayer {
  torch::Tensor alpha;  // float [M, H, W] coverage
  torch::Tensor fill;   // float [M, 3, H, W] textured colour
};

// Renders every instance over a full image grid, grouped by class (and by texture) so each
// group is one set of batched ops.
ShapeLayer RenderShapes(const std::vector<ShapeInstance>& shapes, std::vector<Rng>& shape_rngs,
                        int64_t size) {
  const int64_t m = static_cast<int64_t>(shapes.size());
  ShapeLayer layer;
  layer.alpha = torch::zeros({m, size, size}, torch::kFloat);
  if (m == 0) {
    layer.fill = torch::zeros({0, 3, size, size}, torch::kFloat);
    return layer;
  }
  torch::Tensor mottle = Upsample(DrawUniform(shape_rngs, {1, 6, 6}, 0.0, 1.0), size, size);

  std::vector<float> cx(m), cy(m), scale(m), cosa(m), sina(m), ax(m), ay(m), freq(m), tc(m), ts(m),
      phase(m);
  std::vector<float> colour(m * 3), second(m * 3);
  for (int64_t k = 0; k < m; ++k) {
    const ShapeInstance& s = shapes[k];
    cx[k] = s.cx;
    cy[k] = s.cy;
    scale[k] = s.scale;
    cosa[k] = std::cos(s.angle);
    sina[k] = std::sin(s.angle);
    ax[k] = s.aspect_x;
    ay[k] = s.aspect_y;
    freq[k] = s.tex_frequency;
    tc[k] = std::cos(s.tex_angle);
    ts[k] = std::sin(s.tex_angle);
    phase[k] = s.tex_phase;
    for (int c = 0; c < 3; ++c) {
      colour[k * 3 + c] = s.colour[c];
      second[k * 3 + c] = s.second[c];
    }
  }
  auto col = [m](const std::vector<float>& v) { return FloatTensor(v).view({m, 1, 1}); };
  const torch::Tensor centres = torch::arange(size, torch::kFloat) + 0.5;
  torch::Tensor dx = centres.view({1, 1, size}) - col(cx);  // [m, 1, W]
  torch::Tensor dy = centres.view({1, size, 1}) - col(cy);  // [m, H, 1]
  torch::Tensor xr = dx * col(cosa) + dy * col(sina);
  torch::Tensor yr = dy * col(cosa) - dx * col(sina);
  torch::Tensor u = xr / (col(scale) * col(ax));
  torch::Tensor v = yr / (col(scale) * col(ay));
  // Distances in pixels for anti-aliasing.
  torch::Tensor to_pixels = col(scale) * torch::min(col(ax), col(ay));

  std::vector<std::vector<int64_t>> by_class(kShapeNames.size());
  std::vector<std::vector<int64_t>> by_texture(4);
  for (int64_t k = 0; k < m; ++k) {
    by_class[static_cast<size_t>(shapes[k].cls)].push_back(k);
    by_texture[static_cast<size_t>(shapes[k].texture)].push_back(k);
  }
  for (size_t c = 0; c < by_class.size(); ++c) {
    if (by_class[c].empty()) continue;
    torch::Tensor idx = LongTensor(by_class[c]);
    torch::Tensor d =
        ShapeDistance(static_cast<int64_t>(c), u.index_select(0, idx), v.index_select(0, idx));
    torch::Tensor a = (0.5 - d * to_pixels.index_select(0, idx)).clamp(0.0, 1.0);
    layer.alpha.index_copy_(0, idx, a);
  }

  // Texture in image coordinates (not the shape's), so it does not give away the rotation.
  torch::Tensor along = dx * col(tc) + dy * col(ts);
  torch::Tensor across = dy * col(tc) - dx * col(ts);
  torch::Tensor tex = torch::zeros({m, size, size}, torch::kFloat);
  for (int t = kStripes; t <= kMottled; ++t) {
    if (by_texture[t].empty()) continue;
    torch::Tensor idx = LongTensor(by_texture[t]);
    torch::Tensor f = col(freq).index_select(0, idx);
    torch::Tensor p = col(phase).index_select(0, idx);
    torch::Tensor al = along.index_select(0, idx), ac = across.index_select(0, idx);
    torch::Tensor value;
    if (t == kStripes) {
      value = 0.5 + 0.5 * torch::sin(al * f + p);
    } else if (t == kChecks) {
      value = ((torch::sin(al * f * 0.8 + p) * torch::sin(ac * f * 0.8 + p)) > 0).to(torch::kFloat);
    } else {
      value = mottle.index_select(0, idx).squeeze(1);
      value = ((value - 0.5) * 2.5 + 0.5).clamp(0.0, 1.0);
    }
    tex.index_copy_(0, idx, value.expand({idx.size(0), size, size}).contiguous());
  }
  torch::Tensor c1 = FloatTensor(colour).view({m, 3, 1, 1});
  torch::Tensor c2 = FloatTensor(second).view({m, 3, 1, 1});
  layer.fill = c1 + (c2 - c1) * tex.unsqueeze(1);
  return layer;
}

struct Background {
  std::array<float, 3> base;
  float grad_x, grad_y;
};

Background DrawBackground(Rng& rng) {
  Background b{};
  const float grey = static_cast<float>(rng.Uniform(0.2, 0.8));
  const float mix = static_cast<float>(rng.Uniform(0.3, 0.8));
  for (float& c : b.base)
    c = mix * grey + (1.0f - mix) * static_cast<float>(rng.Uniform(0.15, 0.85));
  b.grad_x = static_cast<float>(rng.Uniform(-0.2, 0.2));
  b.grad_y = static_cast<float>(rng.Uniform(-0.2, 0.2));
  return b;
}

float Luma(const std::array<float, 3>& c) { return (c[0] + c[1] + c[2]) / 3.0f; }

// Keeps a shape's brightness at least kGap from its background's, shifting the shape's colours
// (hue kept) to whichever side has room, so no shape vanishes into its background.
void SeparateFromBackground(ShapeInstance& shape, const Background& background) {
  constexpr float kGap = 0.25f;
  const float bg = Luma(background.base), fg = Luma(shape.colour);
  if (std::abs(fg - bg) >= kGap) return;
  float target = fg >= bg ? bg + kGap : bg - kGap;
  if (target > 0.9f || target < 0.1f) target = fg >= bg ? bg - kGap : bg + kGap;
  for (int c = 0; c < 3; ++c) {
    shape.colour[c] = std::clamp(shape.colour[c] + target - fg, 0.0f, 1.0f);
    shape.second[c] = std::clamp(shape.second[c] + target - fg, 0.0f, 1.0f);
  }
}

// Backgrounds: a flat colour, a gradient, smooth blotches and pixel noise.
torch::Tensor RenderBackgrounds(const std::vector<Background>& backgrounds, std::vector<Rng>& rngs,
                                int64_t size) {
  const int64_t n = static_cast<int64_t>(rngs.size());
  std::vector<float> base(n * 3), grad_x(n), grad_y(n);
  for (int64_t i = 0; i < n; ++i) {
    for (int c = 0; c < 3; ++c) base[i * 3 + c] = backgrounds[i].base[c];
    grad_x[i] = backgrounds[i].grad_x;
    grad_y[i] = backgrounds[i].grad_y;
  }
  torch::Tensor blotches = Upsample(DrawUniform(rngs, {3, 5, 5}, -0.12, 0.12), size, size);
  torch::Tensor noise = DrawNormal(rngs, {3, size, size}, 0.05);
  const torch::Tensor ramp = (torch::arange(size, torch::kFloat) + 0.5) / size - 0.5;
  torch::Tensor gradient = FloatTensor(grad_x).view({n, 1, 1, 1}) * ramp.view({1, 1, 1, size}) +
                           FloatTensor(grad_y).view({n, 1, 1, 1}) * ramp.view({1, 1, size, 1});
  return FloatTensor(base).view({n, 3, 1, 1}) + gradient + blotches + noise;
}

void CheckShapesOptions(const SyntheticShapesOptions& options) {
  TORCH_CHECK(options.count >= 0, "synthetic shapes: count must be >= 0");
  TORCH_CHECK(
      options.num_classes >= 2 && options.num_classes <= static_cast<int64_t>(kShapeNames.size()),
      "synthetic shapes: num_classes must be in [2, 12], got ", options.num_classes);
  TORCH_CHECK(options.image_size >= 8, "synthetic shapes: image_size must be >= 8");
}

TensorDataset MakeMoon(const SyntheticMoonOptions& options) {
  TORCH_CHECK(options.count >= 0, "synthetic moon: count must be >= 0");
  TORCH_CHECK(options.image_size >= 8, "synthetic moon: image_size must be >= 8");
  TORCH_CHECK(options.min_rocks >= 0 && options.max_rocks >= options.min_rocks,
              "synthetic moon: need 0 <= min_rocks <= max_rocks");
  torch::NoGradGuard no_grad;
  const int64_t size = options.image_size;
  TensorDataset data;
  data.task = Task::kBinarySegmentation;
  data.class_names = {"rock"};
  data.images = torch::empty({options.count, 3, size, size}, torch::kUInt8);
  data.targets = torch::empty({options.count, size, size}, torch::kUInt8);
  const int64_t chunk = ChunkImages(size);
  for (int64_t first = 0; first < options.count && !StopRequested(options.stop); first += chunk) {
    const int64_t n = std::min(chunk, options.count - first);
    auto [images, masks] = RenderMoonChunk(options, first, n);
    data.images.narrow(0, first, n).copy_(images);
    data.targets.narrow(0, first, n).copy_(masks);
  }
  return data;
}

TensorDataset MakeShapes(const SyntheticShapesOptions& options) {
  CheckShapesOptions(options);
  torch::NoGradGuard no_grad;
  const int64_t size = options.image_size;
  const int64_t k = options.num_classes;
  TensorDataset data;
  data.task = Task::kClassification;
  for (int64_t c = 0; c < k; ++c) data.class_names.emplace_back(kShapeNames[c]);
  data.images = torch::empty({options.count, 3, size, size}, torch::kUInt8);
  std::vector<int64_t> labels;
  const int64_t chunk = ChunkImages(size);
  for (int64_t first = 0; first < options.count && !StopRequested(options.stop); first += chunk) {
    const int64_t n = std::min(chunk, options.count - first);
    std::vector<Rng> rngs = ImageRngs(options.seed, kShapesStream, first, n);
    std::vector<ShapeInstance> shapes;
    std::vector<Background> backgrounds;
    for (int64_t i = 0; i < n; ++i) {
      // Balanced: class (first + i) mod K; the loader shuffles.
      const int64_t cls = (first + i) % k;
      labels.push_back(cls);
      shapes.push_back(DrawShape(rngs[i], i, cls, k, size, 0.2, 0.34, 0.95));
      backgrounds.push_back(DrawBackground(rngs[i]));
      SeparateFromBackground(shapes.back(), backgrounds.back());
    }
    torch::Tensor background = RenderBackgrounds(backgrounds, rngs, size);
    ShapeLayer layer = RenderShapes(shapes, rngs, size);
    torch::Tensor alpha = layer.alpha.unsqueeze(1);
    torch::Tensor noise = DrawNormal(rngs, {3, size, size}, 0.04);
    data.images.narrow(0, first, n)
        .copy_(ToUint8(background * (1.0 - alpha) + layer.fill * alpha + noise * alpha));
  }
  data.targets = LongTensor(labels);
  return data;
}

TensorDataset MakeShapesSegmentation(const SyntheticShapesOptions& options) {
  CheckShapesOptions(options);
  torch::NoGradGuard no_grad;
  const int64_t size = options.image_size;
  const int64_t k = options.num_classes;
  constexpr int64_t kMaxShapes = 4;
  TensorDataset data;
  data.task = Task::kMultiClassSegmentation;
  data.class_names.emplace_back("background");
  for (int64_t c = 0; c < k; ++c) data.class_names.emplace_back(kShapeNames[c]);
  data.ignore_index = -100;  // every pixel is labelled: no void region
  data.images = torch::empty({options.count, 3, size, size}, torch::kUInt8);
  data.targets = torch::empty({options.count, size, size}, torch::kLong);
  const int64_t chunk = ChunkImages(size);
  for (int64_t first = 0; first < options.count && !StopRequested(options.stop); first += chunk) {
    const int64_t n = std::min(chunk, options.count - first);
    std::vector<Rng> rngs = ImageRngs(options.seed, kShapesSegStream, first, n);
    std::vector<ShapeInstance> shapes;
    std::vector<int64_t> slot;
    std::vector<Background> backgrounds;
    for (int64_t i = 0; i < n; ++i) {
      backgrounds.push_back(DrawBackground(rngs[i]));
      const int64_t count = rngs[i].Int(2, kMaxShapes);
      for (int64_t j = 0; j < count; ++j) {
        shapes.push_back(DrawShape(rngs[i], i, rngs[i].Int(0, k - 1), k, size, 0.12, 0.24, 0.6));
        SeparateFromBackground(shapes.back(), backgrounds.back());
        slot.push_back(j);
      }
    }
    torch::Tensor canvas = RenderBackgrounds(backgrounds, rngs, size);
    // One stream per shape for its mottled texture, keyed by image so chunking cannot matter.
    std::vector<Rng> shape_rngs;
    for (size_t s = 0; s < shapes.size(); ++s) {
      shape_rngs.emplace_back(Mix(StreamSeed(options.seed, kShapesSegStream,
                                             static_cast<uint64_t>(first + shapes[s].image)) ^
                                  static_cast<uint64_t>(slot[s] + 1)));
    }
    ShapeLayer layer = RenderShapes(shapes, shape_rngs, size);
    torch::Tensor labels = torch::zeros({n, size, size}, torch::kLong);
    // Painter's order by slot: later shapes cover earlier ones, in the image and the labels.
    for (int64_t j = 0; j < kMaxShapes; ++j) {
      std::vector<int64_t> members, owners, classes;
      for (size_t s = 0; s < shapes.size(); ++s) {
        if (slot[s] != j) continue;
        members.push_back(static_cast<int64_t>(s));
        owners.push_back(shapes[s].image);
        classes.push_back(shapes[s].cls + 1);
      }
      if (members.empty()) continue;
      torch::Tensor idx = LongTensor(members), own = LongTensor(owners);
      torch::Tensor alpha = layer.alpha.index_select(0, idx);
      torch::Tensor under = canvas.index_select(0, own);
      torch::Tensor a4 = alpha.unsqueeze(1);
      canvas.index_copy_(0, own, under * (1.0 - a4) + layer.fill.index_select(0, idx) * a4);
      torch::Tensor old = labels.index_select(0, own);
      labels.index_copy_(
          0, own,
          torch::where(alpha >= 0.5, LongTensor(classes).view({-1, 1, 1}).expand_as(old), old));
    }
    canvas = canvas + DrawNormal(rngs, {3, size, size}, 0.03);
    data.images.narrow(0, first, n).copy_(ToUint8(canvas));
    data.targets.narrow(0, first, n).copy_(labels);
  }
  return data;
}

// Runs `fn` on a helper thread limited to one intra-op thread, and waits for it. Generation is
// hundreds of small ops; with two intra-op threads on a busy two-core machine every OpenMP
// fork and join spins for milliseconds waiting for a core (measured: 10-22 s of CPU instead of
// 0.6 s for 512 moon images). torch::set_num_threads would change process-wide state under any
// other thread running torch, so the helper narrows its own OpenMP team instead, after torch
// has initialised it. Without OpenMP the weak symbol is null and `fn` runs here as it is.
template <typename Fn>
void RunWithOneIntraOpThread(Fn&& fn) {
  if (&omp_set_num_threads == nullptr || at::get_num_threads() <= 1) {
    fn();
    return;
  }
  std::exception_ptr error;
  std::thread helper([&fn, &error] {
    try {
      (void)at::get_num_threads();  // torch sets this thread's team size on first use...
      omp_set_num_threads(1);       // ...which is then narrowed for this thread only
      fn();
    } catch (...) {
      error = std::current_exception();
    }
  });
  helper.join();
  if (error != nullptr) std::rethrow_exception(error);
}

}  // namespace

TensorDataset MakeSyntheticMoon(const SyntheticMoonOptions& options) {
  TensorDataset data;
  RunWithOneIntraOpThread([&] { data = MakeMoon(options); });
  return data;
}

TensorDataset MakeSyntheticShapes(const SyntheticShapesOptions& options) {
  TensorDataset data;
  RunWithOneIntraOpThread([&] { data = MakeShapes(options); });
  return data;
}

TensorDataset MakeSyntheticShapesSegmentation(const SyntheticShapesOptions& options) {
  TensorDataset data;
  RunWithOneIntraOpThread([&] { data = MakeShapesSegmentation(options); });
  return data;
}

TrainValSplit SplitDataset(const TensorDataset& dataset, double val_fraction, uint64_t seed) {
  TORCH_CHECK(val_fraction >= 0.0 && val_fraction < 1.0,
              "SplitDataset: val_fraction must be in [0, 1), got ", val_fraction);
  const int64_t n = dataset.size();
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  Rng rng(StreamSeed(seed, kSplitStream, 0));
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[rng.Int(0, i)]);
  int64_t val = static_cast<int64_t>(std::llround(val_fraction * static_cast<double>(n)));
  // A requested validation set gets at least one image, and training keeps at least one.
  if (val_fraction > 0.0 && n >= 2) val = std::clamp<int64_t>(val, 1, n - 1);
  val = std::clamp<int64_t>(val, 0, n);
  std::vector<int64_t> train_ids(order.begin(), order.end() - val);
  std::vector<int64_t> val_ids(order.end() - val, order.end());
  // Keep each part in data set order: only membership is random.
  std::sort(train_ids.begin(), train_ids.end());
  std::sort(val_ids.begin(), val_ids.end());

  auto subset = [&dataset](const std::vector<int64_t>& ids) {
    TensorDataset part;
    part.task = dataset.task;
    part.class_names = dataset.class_names;
    part.ignore_index = dataset.ignore_index;
    torch::Tensor index = LongTensor(ids);
    if (dataset.images.defined()) part.images = dataset.images.index_select(0, index);
    if (dataset.targets.defined()) part.targets = dataset.targets.index_select(0, index);
    return part;
  };
  return {subset(train_ids), subset(val_ids)};
}

}  // namespace selene::train
