// Batched augmentation: images and masks stay aligned under every geometry, flips are exact,
// off means untouched, colour jitter keeps [0, 1] and leaves masks alone, seeds decide the
// output, pixels from outside the source get the right fill, invalid options name their field.
#include "server/data/augmentation.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace selene::data {
namespace {

namespace F = torch::nn::functional;
using train::Batch;
using train::Task;

// Labels 0..classes-1 in large blobs (a rectangle, a disc and, with more than two classes, a
// bar) placed differently in every image, so boundaries are long and interiors wide.
torch::Tensor BlobMasks(int64_t n, int64_t height, int64_t width, int64_t classes) {
  const torch::Tensor yy = torch::arange(height, torch::kFloat).view({height, 1});
  const torch::Tensor xx = torch::arange(width, torch::kFloat).view({1, width});
  torch::Tensor masks = torch::zeros({n, height, width}, torch::kLong);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t y0 = (i * 5) % (height / 3), x0 = (i * 7) % (width / 3);
    masks[i].slice(0, y0, y0 + height / 2).slice(1, x0, x0 + width / 2).fill_(1);
    const double cy = height * (0.55 + 0.1 * (i % 3)), cx = width * (0.6 + 0.05 * (i % 4));
    const double radius = height * 0.22;
    const torch::Tensor disc = (yy - cy).pow(2) + (xx - cx).pow(2) < radius * radius;
    masks[i].masked_fill_(disc, std::min<int64_t>(2, classes - 1));
    if (classes > 3) masks[i].slice(0, 0, height).slice(1, width - 8, width - 2).fill_(3);
  }
  return masks;
}

// Channel 0 carries the label (label / (classes - 1)), channel 1 a horizontal ramp (a marker the
// geometry visibly moves), channel 2 ones (which pixels come from inside the source).
torch::Tensor ImagesFromMasks(const torch::Tensor& masks, int64_t classes) {
  const int64_t n = masks.size(0), height = masks.size(1), width = masks.size(2);
  const torch::Tensor label = masks.to(torch::kFloat) / static_cast<double>(classes - 1);
  const torch::Tensor ramp = (torch::linspace(0.0, 0.5, width).view({1, 1, width}) +
                              torch::linspace(0.0, 0.5, height).view({1, height, 1}))
                                 .expand({n, height, width});
  return torch::stack({label, ramp, torch::ones_like(label)}, 1).contiguous();
}

Batch MakeBatch(const torch::Tensor& images, const torch::Tensor& targets) {
  Batch batch;
  batch.images = images.clone();
  batch.targets = targets.clone();
  batch.indices = torch::arange(images.size(0), torch::kLong);
  return batch;
}

Batch Augment(const AugmentationOptions& options, Task task, const torch::Tensor& images,
              const torch::Tensor& targets, uint64_t seed, int64_t ignore_index = -100) {
  Batch batch = MakeBatch(images, targets);
  MakeAugmentation(options, task, ignore_index)(batch, seed);
  return batch;
}

// True where a (2 * radius + 1)-square window around the pixel holds more than one value.
torch::Tensor NearBoundary(const torch::Tensor& labels, int64_t radius) {
  const torch::Tensor x = labels.to(torch::kFloat).unsqueeze(1);
  const auto pool = F::MaxPool2dFuncOptions(2 * radius + 1).stride(1).padding(radius);
  const torch::Tensor high = F::max_pool2d(x, pool), low = -F::max_pool2d(-x, pool);
  return (high != low).squeeze(1);
}

// Every pixel where `a` holds, `b` holds too.
bool Implies(const torch::Tensor& a, const torch::Tensor& b) { return (~a | b).all().item<bool>(); }

struct Geometry {
  std::string name;
  AugmentationOptions options;
};

std::vector<Geometry> EveryGeometry() {
  std::vector<Geometry> all;
  AugmentationOptions o;
  o.hflip = true;
  all.push_back({"hflip", o});
  o = {};
  o.vflip = true;
  all.push_back({"vflip", o});
  o.hflip = true;
  all.push_back({"hflip+vflip", o});
  o = {};
  o.rotation_degrees = 180;
  all.push_back({"rotation", o});
  o = {};
  o.crop_scale_min = 0.3;
  o.crop_scale_max = 1.0;
  all.push_back({"crop", o});
  o.hflip = o.vflip = true;
  o.rotation_degrees = 45;
  all.push_back({"flips+rotation+crop", o});
  return all;
}

// The image is built from the mask, so after the transform the label read back from the image
// must be the mask's label. Bilinear and nearest can only disagree inside a source cell (between
// four source pixel centres) that a label boundary or the source's edge crosses: within one
// source pixel of it, which the largest crop here (area 0.3, ratio 3/4) magnifies to about 2.1
// output pixels. So mismatches are allowed in a 3-pixel band around the output mask's boundaries
// and in the outer 3-pixel frame (where the boundary behind a mismatch can lie just outside the
// output), nowhere else; a mask shifted by a few pixels against its image fails this in every
// warped case.
TEST(AugmentationTest, ImageAndMaskStayAlignedUnderEveryGeometry) {
  const int64_t n = 12, height = 40, width = 56;  // not square: rotation must stay a rotation
  for (const int64_t classes : {int64_t{2}, int64_t{4}}) {
    const Task task = classes == 2 ? Task::kBinarySegmentation : Task::kMultiClassSegmentation;
    const torch::Tensor masks = BlobMasks(n, height, width, classes);
    const torch::Tensor targets =
        task == Task::kBinarySegmentation ? masks.to(torch::kFloat) : masks;
    const torch::Tensor images = ImagesFromMasks(masks, classes);
    for (const Geometry& geometry : EveryGeometry()) {
      for (uint64_t seed = 0; seed < 6; ++seed) {
        SCOPED_TRACE(geometry.name + " classes=" + std::to_string(classes) +
                     " seed=" + std::to_string(seed));
        const Batch out = Augment(geometry.options, task, images, targets, seed);
        ASSERT_EQ(out.images.sizes(), images.sizes());
        ASSERT_EQ(out.targets.sizes(), targets.sizes());
        ASSERT_EQ(out.targets.scalar_type(), targets.scalar_type());
        // The geometry really moved the content.
        EXPECT_FALSE(torch::allclose(out.images.select(1, 1), images.select(1, 1)));

        const torch::Tensor mask = out.targets.to(torch::kLong);
        const torch::Tensor inside = out.images.select(1, 2);
        const torch::Tensor outside = mask == -100;
        if (task == Task::kBinarySegmentation) {
          // Binary masks are 0 outside the source, like the image.
          EXPECT_EQ(outside.sum().item<int64_t>(), 0);
        }
        // A pixel sampled wholly inside the source is inside for the mask too; multi-class:
        // one sampled wholly outside is the ignore index.
        EXPECT_TRUE(Implies(inside > 1 - 1e-5, ~outside));
        if (task == Task::kMultiClassSegmentation) {
          EXPECT_TRUE(Implies(inside < 1e-6, outside));
        }
        const torch::Tensor from_image =
            torch::round(out.images.select(1, 0) * static_cast<double>(classes - 1))
                .to(torch::kLong);
        const torch::Tensor mismatch = (from_image != mask) & ~outside;
        torch::Tensor band = NearBoundary(mask, 3);
        band.slice(1, 0, 3).fill_(true);
        band.slice(1, height - 3, height).fill_(true);
        band.slice(2, 0, 3).fill_(true);
        band.slice(2, width - 3, width).fill_(true);
        EXPECT_EQ((mismatch & ~band).sum().item<int64_t>(), 0)
            << "mismatches away from any boundary";
        // The band leaves a good share of every batch to compare, so the check has teeth.
        EXPECT_GT((~band & ~outside).sum().item<int64_t>(), n * height * width / 5);
      }
    }
  }
}

// With flips alone each image is either untouched or mirrored bit for bit (no resampling), and
// its mask takes the same choice.
TEST(AugmentationTest, FlipsMirrorExactly) {
  torch::manual_seed(3);
  const int64_t n = 32;
  const torch::Tensor images = torch::rand({n, 3, 9, 11});
  const torch::Tensor masks = torch::randint(0, 5, {n, 9, 11}, torch::kLong);
  AugmentationOptions hflip;
  hflip.hflip = true;
  const Batch h = Augment(hflip, Task::kMultiClassSegmentation, images, masks, 42);
  int mirrored = 0;
  for (int64_t i = 0; i < n; ++i) {
    const bool flipped = !torch::equal(h.images[i], images[i]);
    if (flipped) {
      ++mirrored;
      EXPECT_TRUE(torch::equal(h.images[i], images[i].flip({2}))) << i;
      EXPECT_TRUE(torch::equal(h.targets[i], masks[i].flip({1}))) << i;
    } else {
      EXPECT_TRUE(torch::equal(h.targets[i], masks[i])) << i;
    }
  }
  // p = 0.5: with this seed both outcomes occur.
  EXPECT_GT(mirrored, 4);
  EXPECT_LT(mirrored, n - 4);

  AugmentationOptions both = hflip;
  both.vflip = true;
  const Batch hv = Augment(both, Task::kMultiClassSegmentation, images, masks, 7);
  std::set<int> seen;
  for (int64_t i = 0; i < n; ++i) {
    int found = -1;
    for (int variant = 0; variant < 4; ++variant) {
      std::vector<int64_t> dims;
      if (variant & 1) dims.push_back(2);
      if (variant & 2) dims.push_back(1);
      const torch::Tensor image = dims.empty() ? images[i] : images[i].flip(dims);
      if (torch::equal(hv.images[i], image)) {
        found = variant;
        std::vector<int64_t> mask_dims;
        for (int64_t d : dims) mask_dims.push_back(d - 1);
        const torch::Tensor mask = dims.empty() ? masks[i] : masks[i].flip(mask_dims);
        EXPECT_TRUE(torch::equal(hv.targets[i], mask)) << i;
      }
    }
    EXPECT_GE(found, 0) << "image " << i << " is not an exact flip of its source";
    seen.insert(found);
  }
  EXPECT_EQ(seen.size(), 4u);
}

TEST(AugmentationTest, IdentityOptionsLeaveTheBatchBitIdentical) {
  torch::manual_seed(4);
  const torch::Tensor images = torch::rand({5, 3, 16, 16});
  const torch::Tensor masks = torch::randint(0, 2, {5, 16, 16}).to(torch::kFloat);
  AugmentationOptions off;
  EXPECT_FALSE(off.any());
  off.crop_scale_min = off.crop_scale_max = 1.0;  // the full image: no crop
  EXPECT_FALSE(off.any());
  const Batch out = Augment(off, Task::kBinarySegmentation, images, masks, 9);
  EXPECT_TRUE(torch::equal(out.images, images));
  EXPECT_TRUE(torch::equal(out.targets, masks));
}

TEST(AugmentationTest, AnySeesEveryOption) {
  auto with = [](auto set) {
    AugmentationOptions o;
    set(o);
    return o.any();
  };
  EXPECT_TRUE(with([](AugmentationOptions& o) { o.hflip = true; }));
  EXPECT_TRUE(with([](AugmentationOptions& o) { o.vflip = true; }));
  EXPECT_TRUE(with([](AugmentationOptions& o) { o.rotation_degrees = 1; }));
  EXPECT_TRUE(with([](AugmentationOptions& o) { o.crop_scale_min = 0.5; }));
  EXPECT_TRUE(with([](AugmentationOptions& o) { o.brightness = 0.1; }));
  EXPECT_TRUE(with([](AugmentationOptions& o) { o.contrast = 0.1; }));
  EXPECT_TRUE(with([](AugmentationOptions& o) { o.saturation = 0.1; }));
}

TEST(AugmentationTest, ColourJitterKeepsUnitRangeAndLeavesMasksAlone) {
  torch::manual_seed(5);
  const int64_t n = 16;
  const torch::Tensor images = torch::rand({n, 3, 12, 12});
  const torch::Tensor masks = torch::randint(0, 2, {n, 12, 12}).to(torch::kFloat);
  AugmentationOptions strong;
  strong.brightness = strong.contrast = strong.saturation = 1.0;
  const Batch out = Augment(strong, Task::kBinarySegmentation, images, masks, 11);
  EXPECT_TRUE(torch::equal(out.targets, masks));
  EXPECT_GE(out.images.min().item<float>(), 0.0f);
  EXPECT_LE(out.images.max().item<float>(), 1.0f);
  for (int64_t i = 0; i < n; ++i) EXPECT_FALSE(torch::allclose(out.images[i], images[i])) << i;
}

// Each adjustment on its own, on images where nothing clamps, against what it must preserve.
TEST(AugmentationTest, ColourAdjustmentsDoWhatTheySay) {
  torch::manual_seed(6);
  const int64_t n = 16;
  const torch::Tensor images = 0.4 + 0.2 * torch::rand({n, 3, 10, 10});  // in [0.4, 0.6]
  const torch::Tensor masks = torch::zeros({n, 10, 10});
  const torch::Tensor luma = torch::tensor({0.2989f, 0.587f, 0.114f}).view({1, 3, 1, 1});
  auto grey = [&](const torch::Tensor& x) { return (x * luma).sum(1); };

  // Brightness: one factor per image, in [0.5, 1.5], not the same for all.
  AugmentationOptions brightness;
  brightness.brightness = 0.5;
  const torch::Tensor b = Augment(brightness, Task::kBinarySegmentation, images, masks, 1).images;
  const torch::Tensor factor = (b / images).flatten(1);
  const torch::Tensor low = factor.amin(1), high = factor.amax(1);
  EXPECT_TRUE(torch::allclose(low, high, 1e-5, 1e-5));
  EXPECT_GE(factor.min().item<float>(), 0.5f - 1e-5f);
  EXPECT_LE(factor.max().item<float>(), 1.5f + 1e-5f);
  EXPECT_GT((high.max() - high.min()).item<float>(), 0.1f);

  // Contrast: the mean grey of each image stays, the spread around it changes.
  AugmentationOptions contrast;
  contrast.contrast = 0.5;
  const torch::Tensor c = Augment(contrast, Task::kBinarySegmentation, images, masks, 2).images;
  EXPECT_TRUE(torch::allclose(grey(c).mean({1, 2}), grey(images).mean({1, 2}), 1e-4, 1e-4));
  EXPECT_FALSE(torch::allclose(c.std(), images.std(), 1e-3, 1e-3));

  // Saturation: the greyscale of each pixel stays (up to the luma weights summing to 0.9999),
  // a grey image stays grey.
  AugmentationOptions saturation;
  saturation.saturation = 0.5;
  const torch::Tensor s = Augment(saturation, Task::kBinarySegmentation, images, masks, 3).images;
  EXPECT_TRUE(torch::allclose(grey(s), grey(images), 1e-3, 1e-3));
  EXPECT_FALSE(torch::allclose(s, images, 1e-3, 1e-3));
  const torch::Tensor grey_images = images.select(1, 0).unsqueeze(1).expand({n, 3, 10, 10});
  const torch::Tensor g =
      Augment(saturation, Task::kBinarySegmentation, grey_images, masks, 3).images;
  EXPECT_TRUE(torch::allclose(g, grey_images, 1e-3, 1e-3));
}

TEST(AugmentationTest, SameSeedSameOutputDifferentSeedsDiffer) {
  const torch::Tensor masks = BlobMasks(8, 24, 24, 4);
  const torch::Tensor images = ImagesFromMasks(masks, 4);
  AugmentationOptions all;
  all.hflip = all.vflip = true;
  all.rotation_degrees = 30;
  all.crop_scale_min = 0.5;
  all.brightness = all.contrast = all.saturation = 0.4;
  const Task task = Task::kMultiClassSegmentation;
  const Batch a = Augment(all, task, images, masks, 123);
  const Batch b = Augment(all, task, images, masks, 123);
  const Batch c = Augment(all, task, images, masks, 124);
  EXPECT_TRUE(torch::equal(a.images, b.images));
  EXPECT_TRUE(torch::equal(a.targets, b.targets));
  EXPECT_FALSE(torch::allclose(a.images, c.images));
  EXPECT_FALSE(torch::equal(a.targets, c.targets));
}

TEST(AugmentationTest, ClassificationTargetsAreUntouched) {
  torch::manual_seed(8);
  const torch::Tensor images = torch::rand({6, 3, 20, 20});
  const torch::Tensor labels = torch::tensor({5, 0, 199, 3, 3, 42}, torch::kLong);
  AugmentationOptions all;
  all.hflip = all.vflip = true;
  all.rotation_degrees = 90;
  all.crop_scale_min = 0.2;
  all.brightness = all.contrast = all.saturation = 0.5;
  const Batch out = Augment(all, Task::kClassification, images, labels, 5);
  EXPECT_TRUE(torch::equal(out.targets, labels));
  EXPECT_EQ(out.images.sizes(), images.sizes());
  EXPECT_FALSE(torch::allclose(out.images, images));
}

// Rotation takes pixels from outside the source: images get 0, binary masks 0 and multi-class
// masks the ignore index, whichever value that is (-1 would collide with a "label + 1" trick).
TEST(AugmentationTest, PixelsFromOutsideTheSourceGetTheirFill) {
  const int64_t n = 8, side = 24;
  const torch::Tensor white = torch::ones({n, 3, side, side});
  AugmentationOptions rotate;
  rotate.rotation_degrees = 180;
  for (const int64_t ignore : {int64_t{255}, int64_t{-1}, int64_t{-100}}) {
    SCOPED_TRACE("ignore_index=" + std::to_string(ignore));
    const torch::Tensor masks = torch::full({n, side, side}, 2, torch::kLong);
    const Batch out =
        Augment(rotate, Task::kMultiClassSegmentation, white, masks, 77, /*ignore_index=*/ignore);
    const torch::Tensor image = out.images.select(1, 0);
    const torch::Tensor ignored = out.targets == ignore;
    EXPECT_TRUE(((out.targets == 2) | ignored).all().item<bool>());
    EXPECT_TRUE(Implies(image < 1e-6, ignored));
    EXPECT_TRUE(Implies(image > 1 - 1e-5, ~ignored));
    EXPECT_GT(ignored.sum().item<int64_t>(), n * side * side / 20);
    // The centre never leaves the source.
    EXPECT_TRUE((out.targets.select(1, side / 2).select(1, side / 2) == 2).all().item<bool>());
  }
  const torch::Tensor ones = torch::ones({n, side, side});
  const Batch binary = Augment(rotate, Task::kBinarySegmentation, white, ones, 77);
  EXPECT_TRUE(((binary.targets == 0) | (binary.targets == 1)).all().item<bool>());
  EXPECT_TRUE(Implies(binary.images.select(1, 0) < 1e-6, binary.targets == 0));
  EXPECT_GT((binary.targets == 0).sum().item<int64_t>(), n * side * side / 20);
}

TEST(AugmentationTest, ValidateNamesTheBadField) {
  struct Case {
    void (*set)(AugmentationOptions&);
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](AugmentationOptions& o) { o.rotation_degrees = 200; },
       "augmentation.rotation_degrees: 200 must be in [0, 180]"},
      {[](AugmentationOptions& o) { o.rotation_degrees = -1; },
       "augmentation.rotation_degrees: -1 must be in [0, 180]"},
      {[](AugmentationOptions& o) { o.crop_scale_min = 0; },
       "augmentation.crop_scale_min: 0 must be in (0, 1]"},
      {[](AugmentationOptions& o) { o.crop_scale_max = 1.5; },
       "augmentation.crop_scale_max: 1.5 must be in (0, 1]"},
      {[](AugmentationOptions& o) {
         o.crop_scale_min = 0.8;
         o.crop_scale_max = 0.5;
       },
       "augmentation.crop_scale_min: 0.8 must be <= crop_scale_max (0.5)"},
      {[](AugmentationOptions& o) { o.brightness = -0.1; },
       "augmentation.brightness: -0.1 must be in [0, 1]"},
      {[](AugmentationOptions& o) { o.contrast = 2; },
       "augmentation.contrast: 2 must be in [0, 1]"},
      {[](AugmentationOptions& o) { o.saturation = std::numeric_limits<double>::quiet_NaN(); },
       "augmentation.saturation: nan must be in [0, 1]"},
  };
  for (const Case& c : cases) {
    AugmentationOptions options;
    c.set(options);
    const Status status = ValidateAugmentation(options);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << c.message;
    EXPECT_EQ(std::string(status.message()), c.message);
    try {
      MakeAugmentation(options, Task::kBinarySegmentation);
      ADD_FAILURE() << "MakeAugmentation accepted: " << c.message;
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << e.what();
    }
  }
  AugmentationOptions full;
  full.hflip = full.vflip = true;
  full.rotation_degrees = 180;
  full.crop_scale_min = 0.08;
  full.brightness = full.contrast = full.saturation = 1.0;
  EXPECT_TRUE(ValidateAugmentation(full).ok());
  EXPECT_TRUE(ValidateAugmentation(AugmentationOptions{}).ok());
}

}  // namespace
}  // namespace selene::data
