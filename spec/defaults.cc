#include "spec/defaults.h"

#include "models/model_options.h"
#include "spec/limits.h"
#include "spec/spec_rules.h"

namespace selene::spec {
namespace {

// The networks' sizes default to the model options' own defaults (models/model_options.h), so
// a spec and a network built without one agree; the enum choices are the proto's names of them.
void ResolveClassifier(v1::ClassifierSpec* c, int64_t classes, bool as_encoder) {
  const models::ClassifierOptions defaults;
  if (!c->has_in_channels()) c->set_in_channels(defaults.in_channels);
  if (!as_encoder && !c->has_num_classes() && classes > 0) c->set_num_classes(classes);
  if (!c->has_stem_width()) c->set_stem_width(defaults.stem_width);
  if (!c->has_stem_stride()) c->set_stem_stride(defaults.stem_stride);
  if (c->block() == v1::BLOCK_TYPE_UNSPECIFIED) c->set_block(v1::BLOCK_TYPE_BASIC);
  if (c->stage_widths_size() == 0) {
    for (int64_t w : defaults.stage_widths) c->add_stage_widths(w);
  }
  if (c->stage_blocks_size() == 0) {
    for (int64_t b : defaults.stage_blocks) c->add_stage_blocks(b);
  }
  if (c->stage_strides_size() == 0) {
    for (int64_t s : defaults.stage_strides) c->add_stage_strides(s);
  }
  if (!c->has_dropout()) c->set_dropout(defaults.dropout);
}

int64_t DefaultOutChannels(v1::Task task, int64_t classes) {
  if (task == v1::TASK_BINARY_SEGMENTATION) return 1;
  return classes;  // 0 when unknown: validation reports it
}

}  // namespace

int64_t ExpectedNumClasses(const v1::JobSpec& spec) {
  const v1::DataSpec& d = spec.data();
  if (spec.task() == v1::TASK_BINARY_SEGMENTATION) return 1;
  if (d.class_ids_size() > 0) return d.class_ids_size();
  int64_t count = d.num_classes();
  if (!d.has_num_classes()) {
    switch (d.kind()) {
      case v1::DATA_KIND_SYNTHETIC_SHAPES:
      case v1::DATA_KIND_SYNTHETIC_SHAPES_SEGMENTATION:
        count = 6;
        break;
      case v1::DATA_KIND_TINY_IMAGENET:
        count = 200;
        break;
      default:
        return 0;
    }
  }
  // The shapes segmentation labels background as class 0 on top of the shapes.
  if (d.kind() == v1::DATA_KIND_SYNTHETIC_SHAPES_SEGMENTATION) return count + 1;
  return count;
}

v1::JobSpec ResolveDefaults(const v1::JobSpec& original) {
  v1::JobSpec spec = original;
  const v1::Task task = spec.task();

  // Data.
  v1::DataSpec* d = spec.mutable_data();
  const bool synthetic = IsSynthetic(d->kind());
  if (!d->has_image_size()) {
    const bool large =
        d->kind() == v1::DATA_KIND_MOON || d->kind() == v1::DATA_KIND_SEGMENTATION_FOLDER;
    d->set_image_size(large ? 256 : 64);
  }
  // Tiny ImageNet keeps "unset" to mean "its own val/ split".
  if (!d->has_validation_fraction() && d->kind() != v1::DATA_KIND_TINY_IMAGENET) {
    d->set_validation_fraction(0.2);
  }
  if (!d->has_split_seed()) d->set_split_seed(1);
  if (synthetic && !d->has_num_samples()) {
    d->set_num_samples(d->kind() == v1::DATA_KIND_SYNTHETIC_MOON ? 512 : 1000);
  }
  if (!d->has_num_classes() && d->class_ids_size() == 0) {
    if (task == v1::TASK_BINARY_SEGMENTATION) {
      d->set_num_classes(1);
    } else if (d->kind() == v1::DATA_KIND_SYNTHETIC_SHAPES ||
               d->kind() == v1::DATA_KIND_SYNTHETIC_SHAPES_SEGMENTATION) {
      d->set_num_classes(6);
    } else if (d->kind() == v1::DATA_KIND_TINY_IMAGENET) {
      d->set_num_classes(200);
    }
  }
  const int64_t classes = ExpectedNumClasses(spec);

  // Model.
  v1::ModelSpec* m = spec.mutable_model();
  switch (m->family_case()) {
    case v1::ModelSpec::kClassifier:
      ResolveClassifier(m->mutable_classifier(), classes, /*as_encoder=*/false);
      break;
    case v1::ModelSpec::kUnet: {
      v1::UNetSpec* u = m->mutable_unet();
      const models::UNetOptions defaults;
      if (!u->has_in_channels()) u->set_in_channels(defaults.in_channels);
      if (!u->has_out_channels() && DefaultOutChannels(task, classes) > 0) {
        u->set_out_channels(DefaultOutChannels(task, classes));
      }
      if (!u->has_base_width()) u->set_base_width(defaults.base_width);
      if (!u->has_max_width()) u->set_max_width(defaults.max_width);
      if (u->downsample() == v1::DOWNSAMPLE_UNSPECIFIED) u->set_downsample(v1::DOWNSAMPLE_MAX_POOL);
      if (u->upsample() == v1::UPSAMPLE_UNSPECIFIED) u->set_upsample(v1::UPSAMPLE_TRANSPOSED_CONV);
      if (!u->has_dropout()) u->set_dropout(defaults.dropout);
      break;
    }
    case v1::ModelSpec::kEncoderUnet: {
      v1::EncoderUNetSpec* e = m->mutable_encoder_unet();
      const models::EncoderUNetOptions defaults;
      ResolveClassifier(e->mutable_encoder(), classes, /*as_encoder=*/true);
      if (!e->has_out_channels() && DefaultOutChannels(task, classes) > 0) {
        e->set_out_channels(DefaultOutChannels(task, classes));
      }
      if (!e->has_decoder_base_width()) e->set_decoder_base_width(defaults.decoder_base_width);
      if (!e->has_decoder_max_width()) e->set_decoder_max_width(defaults.decoder_max_width);
      if (e->upsample() == v1::UPSAMPLE_UNSPECIFIED) e->set_upsample(v1::UPSAMPLE_BILINEAR);
      if (e->encoder_mode() == v1::ENCODER_MODE_UNSPECIFIED) {
        e->set_encoder_mode(v1::ENCODER_MODE_SCRATCH);
      }
      if (e->encoder_mode() == v1::ENCODER_MODE_FINE_TUNE) {
        if (!e->has_unfreeze_epoch()) e->set_unfreeze_epoch(defaults.unfreeze_epoch);
        if (!e->has_encoder_lr_scale()) e->set_encoder_lr_scale(defaults.encoder_lr_scale);
      }
      break;
    }
    case v1::ModelSpec::FAMILY_NOT_SET:
      break;
  }

  // Training.
  v1::TrainingSpec* t = spec.mutable_training();
  if (!t->has_epochs()) t->set_epochs(10);
  if (!t->has_batch_size()) t->set_batch_size(32);
  v1::OptimizerSpec* o = t->mutable_optimizer();
  if (o->kind() == v1::OPTIMIZER_KIND_UNSPECIFIED) o->set_kind(v1::OPTIMIZER_KIND_ADAMW);
  const bool sgd = o->kind() == v1::OPTIMIZER_KIND_SGD;
  if (!o->has_lr()) o->set_lr(sgd ? 0.1 : 1e-3);
  if (!o->has_weight_decay()) {
    o->set_weight_decay(o->kind() == v1::OPTIMIZER_KIND_ADAMW ? 0.01 : 0.0);
  }
  if (sgd && !o->has_momentum()) o->set_momentum(0.9);
  if (!sgd && !o->has_beta1()) o->set_beta1(0.9);
  if (!sgd && !o->has_beta2()) o->set_beta2(0.999);

  v1::ScheduleSpec* s = t->mutable_schedule();
  if (s->kind() == v1::SCHEDULE_KIND_UNSPECIFIED) s->set_kind(v1::SCHEDULE_KIND_CONSTANT);
  if (!s->has_warmup_epochs()) s->set_warmup_epochs(0);
  if (!s->has_warmup_start_factor()) s->set_warmup_start_factor(0.1);
  switch (s->kind()) {
    case v1::SCHEDULE_KIND_STEP:
      if (!s->has_step_size()) s->set_step_size(10);
      if (!s->has_gamma()) s->set_gamma(0.1);
      break;
    case v1::SCHEDULE_KIND_COSINE:
      if (!s->has_min_factor()) s->set_min_factor(0.0);
      break;
    case v1::SCHEDULE_KIND_REDUCE_ON_PLATEAU:
      if (!s->has_gamma()) s->set_gamma(0.1);
      if (!s->has_min_factor()) s->set_min_factor(0.0);
      if (!s->has_plateau_patience()) s->set_plateau_patience(3);
      if (!s->has_plateau_threshold()) s->set_plateau_threshold(1e-4);
      break;
    default:
      break;
  }

  v1::LossSpec* l = t->mutable_loss();
  if (l->kind() == v1::LOSS_KIND_UNSPECIFIED && task != v1::TASK_UNSPECIFIED) {
    l->set_kind(task == v1::TASK_BINARY_SEGMENTATION ? v1::LOSS_KIND_BCE_DICE
                                                     : v1::LOSS_KIND_CROSS_ENTROPY);
  }
  const v1::LossKind kind = l->kind();
  if (IsBceLoss(kind) && !l->has_pos_weight()) l->set_pos_weight(1.0);
  if (kind == v1::LOSS_KIND_BCE_DICE && !l->has_bce_weight()) l->set_bce_weight(0.5);
  if (kind == v1::LOSS_KIND_CROSS_ENTROPY_DICE && !l->has_ce_weight()) l->set_ce_weight(0.5);
  if ((kind == v1::LOSS_KIND_BCE_DICE || kind == v1::LOSS_KIND_CROSS_ENTROPY_DICE) &&
      !l->has_dice_weight()) {
    l->set_dice_weight(0.5);
  }
  if (IsCrossEntropyLoss(kind) && !l->has_label_smoothing()) l->set_label_smoothing(0.0);
  const bool uses_ignore = IsCrossEntropyLoss(kind) ||
                           (kind == v1::LOSS_KIND_DICE && task == v1::TASK_MULTICLASS_SEGMENTATION);
  if (uses_ignore && !l->has_ignore_index()) l->set_ignore_index(-100);
  if (IsDiceLoss(kind) && !l->has_dice_smooth()) l->set_dice_smooth(1.0);

  if (!t->has_grad_clip_norm()) t->set_grad_clip_norm(0.0);
  if (t->monitor().empty()) {
    switch (task) {
      case v1::TASK_CLASSIFICATION:
        t->set_monitor("top1");
        break;
      case v1::TASK_BINARY_SEGMENTATION:
        t->set_monitor("dice");
        break;
      case v1::TASK_MULTICLASS_SEGMENTATION:
        t->set_monitor("mean_dice");
        break;
      default:
        t->set_monitor("val_loss");
        break;
    }
  }
  v1::EarlyStoppingSpec* es = t->mutable_early_stopping();
  if (es->enabled()) {
    if (!es->has_patience()) es->set_patience(5);
    if (!es->has_min_delta()) es->set_min_delta(0.0);
  }
  if (!t->has_seed()) t->set_seed(1);
  // "auto" leaves the choice to the server, which overrides the device anyway; a local run has
  // the CPU.
  if (t->device().empty() || t->device() == kAnyDevice) t->set_device("cpu");
  if (!t->has_threads()) t->set_threads(0);
  if (t->precision() == v1::PRECISION_UNSPECIFIED) t->set_precision(v1::PRECISION_FP32);
  if (!t->has_channels_last()) t->set_channels_last(true);
  return spec;
}
}  // namespace selene::spec
