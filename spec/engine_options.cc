#include "spec/engine_options.h"

namespace selene::spec {

train::Task ToTrainTask(v1::Task task) {
  switch (task) {
    case v1::TASK_BINARY_SEGMENTATION:
      return train::Task::kBinarySegmentation;
    case v1::TASK_MULTICLASS_SEGMENTATION:
      return train::Task::kMultiClassSegmentation;
    default:
      return train::Task::kClassification;
  }
}

std::string DataKindName(DataKind kind) {
  switch (kind) {
    case DataKind::kSyntheticMoon:
      return "synthetic_moon";
    case DataKind::kSyntheticShapes:
      return "synthetic_shapes";
    case DataKind::kSyntheticShapesSegmentation:
      return "synthetic_shapes_segmentation";
    case DataKind::kTinyImageNet:
      return "tiny_imagenet";
    case DataKind::kMoon:
      return "moon";
    case DataKind::kSegmentationFolder:
      return "segmentation_folder";
  }
  return "unknown";
}

bool DataRequest::synthetic() const {
  return kind == DataKind::kSyntheticMoon || kind == DataKind::kSyntheticShapes ||
         kind == DataKind::kSyntheticShapesSegmentation;
}

DataRequest ToDataRequest(const v1::JobSpec& spec) {
  const v1::DataSpec& d = spec.data();
  DataRequest request;
  request.task = ToTrainTask(spec.task());
  switch (d.kind()) {
    case v1::DATA_KIND_SYNTHETIC_SHAPES:
      request.kind = DataKind::kSyntheticShapes;
      break;
    case v1::DATA_KIND_SYNTHETIC_SHAPES_SEGMENTATION:
      request.kind = DataKind::kSyntheticShapesSegmentation;
      break;
    case v1::DATA_KIND_TINY_IMAGENET:
      request.kind = DataKind::kTinyImageNet;
      break;
    case v1::DATA_KIND_MOON:
      request.kind = DataKind::kMoon;
      break;
    case v1::DATA_KIND_SEGMENTATION_FOLDER:
      request.kind = DataKind::kSegmentationFolder;
      break;
    default:
      request.kind = DataKind::kSyntheticMoon;
      break;
  }
  request.path = d.path();
  request.num_classes = d.num_classes();
  request.class_ids.assign(d.class_ids().begin(), d.class_ids().end());
  request.num_samples = d.num_samples();
  request.image_size = d.image_size();
  request.validation_fraction_set = d.has_validation_fraction();
  request.validation_fraction = d.has_validation_fraction() ? d.validation_fraction() : 0.2;
  request.split_seed = d.split_seed();
  if (spec.training().loss().has_ignore_index()) {
    request.ignore_index = spec.training().loss().ignore_index();
  }
  const v1::AugmentationSpec& a = d.augmentation();
  request.augmentation.hflip = a.hflip();
  request.augmentation.vflip = a.vflip();
  request.augmentation.rotation_degrees = a.rotation_degrees();
  if (a.has_crop_scale_min()) request.augmentation.crop_scale_min = a.crop_scale_min();
  if (a.has_crop_scale_max()) request.augmentation.crop_scale_max = a.crop_scale_max();
  request.augmentation.brightness = a.brightness();
  request.augmentation.contrast = a.contrast();
  request.augmentation.saturation = a.saturation();
  request.normalize_mean.assign(d.normalize_mean().begin(), d.normalize_mean().end());
  request.normalize_std.assign(d.normalize_std().begin(), d.normalize_std().end());
  return request;
}

namespace {

models::ClassifierOptions ToClassifierOptions(const v1::ClassifierSpec& c, bool head) {
  models::ClassifierOptions options;
  options.in_channels = c.in_channels();
  if (c.has_num_classes()) options.num_classes = c.num_classes();
  options.stem_width = c.stem_width();
  options.stem_stride = c.stem_stride();
  options.block = c.block() == v1::BLOCK_TYPE_BOTTLENECK ? models::BlockType::kBottleneck
                                                         : models::BlockType::kBasic;
  options.stage_widths.assign(c.stage_widths().begin(), c.stage_widths().end());
  options.stage_blocks.assign(c.stage_blocks().begin(), c.stage_blocks().end());
  options.stage_strides.assign(c.stage_strides().begin(), c.stage_strides().end());
  options.dropout = c.dropout();
  options.head = head;
  return options;
}

models::Upsample ToUpsample(v1::Upsample upsample) {
  return upsample == v1::UPSAMPLE_BILINEAR ? models::Upsample::kBilinear
                                           : models::Upsample::kTransposedConv;
}

}  // namespace

models::NetworkSpec ToNetworkSpec(const v1::JobSpec& spec) {
  const v1::ModelSpec& m = spec.model();
  models::NetworkSpec network;
  network.parameter_budget = m.parameter_budget();
  network.fit_width_to_budget = m.fit_width_to_budget();
  network.field_prefix = "model.";
  switch (m.family_case()) {
    case v1::ModelSpec::kClassifier:
      network.family = models::Family::kClassifier;
      network.classifier = ToClassifierOptions(m.classifier(), /*head=*/true);
      break;
    case v1::ModelSpec::kUnet: {
      const v1::UNetSpec& u = m.unet();
      network.family = models::Family::kUNet;
      network.unet.in_channels = u.in_channels();
      network.unet.out_channels = u.out_channels();
      network.unet.base_width = u.base_width();
      network.unet.max_width = u.max_width();
      network.unet.downsample = u.downsample() == v1::DOWNSAMPLE_STRIDED_CONV
                                    ? models::Downsample::kStridedConv
                                    : models::Downsample::kMaxPool;
      network.unet.upsample = ToUpsample(u.upsample());
      network.unet.dropout = u.dropout();
      break;
    }
    case v1::ModelSpec::kEncoderUnet: {
      const v1::EncoderUNetSpec& e = m.encoder_unet();
      models::EncoderUNetOptions& options = network.encoder_unet;
      network.family = models::Family::kEncoderUNet;
      options.encoder = ToClassifierOptions(e.encoder(), /*head=*/false);
      options.out_channels = e.out_channels();
      options.decoder_base_width = e.decoder_base_width();
      options.decoder_max_width = e.decoder_max_width();
      options.upsample = ToUpsample(e.upsample());
      switch (e.encoder_mode()) {
        case v1::ENCODER_MODE_FROZEN:
          options.encoder_mode = models::EncoderMode::kFrozen;
          break;
        case v1::ENCODER_MODE_FINE_TUNE:
          options.encoder_mode = models::EncoderMode::kFineTune;
          break;
        default:
          options.encoder_mode = models::EncoderMode::kScratch;
          break;
      }
      if (e.has_unfreeze_epoch()) options.unfreeze_epoch = e.unfreeze_epoch();
      if (e.has_encoder_lr_scale()) options.encoder_lr_scale = e.encoder_lr_scale();
      options.encoder_checkpoint = e.encoder_checkpoint();
      break;
    }
    case v1::ModelSpec::FAMILY_NOT_SET:
      break;
  }
  return network;
}

}  // namespace selene::spec
