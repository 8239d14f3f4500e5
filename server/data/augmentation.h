// Batched augmentation of training batches on tensors: random flips, rotation and resized crop
// shared by images and masks, then colour jitter on images, as a BatchTransform the BatchLoader
// runs on its background thread on the batch's device. No OpenCV: it builds in the engine-only
// configuration.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "server/data/augmentation_options.h"
#include "server/train/batch_loader.h"
#include "server/train/task.h"

namespace selene::data {

// OK, or InvalidArgument naming the first bad field as "augmentation.<field>: <value> must be ...".
Status ValidateAugmentation(const AugmentationOptions& options);

// The training-batch transform: per image, one random geometry (flip, rotation, crop) applied to
// image and mask alike in one affine_grid + grid_sample (bilinear for images, nearest for masks),
// then colour jitter (images only: brightness, contrast, saturation in that fixed order, clamped to
// [0, 1] after each, as torchvision's functional ops), all as batched tensor ops on the batch's
// device, deterministic by the generator seed. Pixels that come from outside the source: images 0
// (black, torchvision's default fill; replicating the border would smear edge pixels into streaks
// that a mask cannot follow), binary masks 0, multi-class masks `ignore_index` (so they are left
// out of loss and metrics). Classification batches: targets untouched. With flips alone the
// images are mirrored exactly, without resampling.
// Expects the batch as the BatchLoader hands it to a transform: images float [B, C, H, W] in
// [0, 1]; targets float [B, H, W] (binary) or int64 [B, H, W] (multi-class). Invalid options
// throw c10::Error when the transform is made (call ValidateAugmentation first for a status).
train::BatchTransform MakeAugmentation(const AugmentationOptions& options, train::Task task,
                                       int64_t ignore_index = -100);

}  // namespace selene::data
