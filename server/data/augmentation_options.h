// What a training run asks of augmentation, as a plain torch-free struct: the job spec's data
// request carries it as is, and server/data/augmentation.h turns it into a batched transform.
#pragma once

namespace selene::data {

struct AugmentationOptions {
  bool hflip = false;             // p = 0.5 per image
  bool vflip = false;             // p = 0.5 per image
  double rotation_degrees = 0.0;  // uniform in [-d, d], d in [0, 180]
  // Random resized crop: area share in [min, max], 0 < min <= max <= 1; aspect ratio log-uniform
  // in [3/4, 4/3], as torchvision's RandomResizedCrop. 1 and 1 = no crop.
  double crop_scale_min = 1.0;
  double crop_scale_max = 1.0;
  double brightness = 0.0;  // factor in [1 - s, 1 + s], s in [0, 1]
  double contrast = 0.0;    // blend with the image's mean grey, factor in [1 - s, 1 + s]
  double saturation = 0.0;  // blend with its greyscale, factor in [1 - s, 1 + s]

  bool any() const {
    return hflip || vflip || rotation_degrees > 0.0 || crop_scale_min < 1.0 ||
           crop_scale_max < 1.0 || brightness > 0.0 || contrast > 0.0 || saturation > 0.0;
  }
};

}  // namespace selene::data
