// Validation of the spec's model: the family against the task, widths, strides, output channels
// against the data's classes, the input size each family needs, and the encoder's source.
#include <google/protobuf/repeated_field.h>

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "spec/enum_names.h"
#include "spec/limits.h"
#include "spec/validation_internal.h"

namespace selene::spec::internal {
namespace {

namespace pb = ::google::protobuf;

// Product of the classifier's strides: the input size must be a multiple for an encoder U-Net.
// Strides other than 1 and 2 are reported by ValidateClassifier and count as 1 here, so the
// product stays small (at most 2^5) whatever the spec holds.
int64_t TotalStride(const v1::ClassifierSpec& spec) {
  const auto valid = [](int64_t s) { return s == 2 ? int64_t{2} : int64_t{1}; };
  int64_t stride = valid(spec.stem_stride());
  for (int64_t s : spec.stage_strides()) stride *= valid(s);
  return stride;
}

void ValidateClassifier(const v1::ClassifierSpec& c, const std::string& path, bool as_encoder,
                        Errors& errors) {
  errors.IntInRange(path + ".in_channels", c.in_channels(), 1, kMaxInChannels);
  if (!as_encoder) errors.IntInRange(path + ".num_classes", c.num_classes(), 2, kMaxClasses);
  errors.IntInRange(path + ".stem_width", c.stem_width(), 1, kMaxWidth);
  if (c.stem_stride() != 1 && c.stem_stride() != 2) {
    errors.Add(path + ".stem_stride", absl::StrCat(c.stem_stride(), " must be 1 or 2"));
  }
  // The networks have four stages (models/classifier.h), each stride 1 or 2.
  constexpr int kStages = 4;
  using Stage = std::pair<const char*, const pb::RepeatedField<int64_t>*>;
  for (const Stage& stage :
       {Stage{"stage_widths", &c.stage_widths()}, Stage{"stage_blocks", &c.stage_blocks()},
        Stage{"stage_strides", &c.stage_strides()}}) {
    const std::string field = absl::StrCat(path, ".", stage.first);
    const pb::RepeatedField<int64_t>& values = *stage.second;
    if (values.size() != kStages) {
      errors.Add(field,
                 absl::StrCat(values.size(), " entries, must have ", kStages, " (one per stage)"));
    }
    for (int i = 0; i < values.size(); ++i) {
      const std::string element = absl::StrCat(field, "[", i, "]");
      if (absl::string_view(stage.first) == "stage_widths") {
        errors.IntInRange(element, values.Get(i), 1, kMaxWidth);
      } else if (absl::string_view(stage.first) == "stage_blocks") {
        errors.IntInRange(element, values.Get(i), 1, kMaxStageBlocks);
      } else if (values.Get(i) != 1 && values.Get(i) != 2) {
        errors.Add(element, absl::StrCat(values.Get(i), " must be 1 or 2"));
      }
    }
  }
  errors.InRange(path + ".dropout", c.dropout(), 0, 1, false, true);
}

// Output channels of a segmentation model: 1 for binary, the class count for multi-class.
void ValidateOutChannels(const std::string& path, int64_t out_channels, v1::Task task,
                         int64_t classes, Errors& errors) {
  if (task == v1::TASK_BINARY_SEGMENTATION && out_channels != 1) {
    errors.Add(path, absl::StrCat(out_channels,
                                  " must be 1 for binary_segmentation (one logit, sigmoid)"));
  } else if (task == v1::TASK_MULTICLASS_SEGMENTATION) {
    if (out_channels < 2) {
      errors.Add(path, absl::StrCat(out_channels, " must be >= 2 for multiclass_segmentation"));
    } else if (out_channels > kMaxClasses) {
      errors.Add(path, absl::StrCat(out_channels, " must be <= ", kMaxClasses));
    } else if (classes > 0 && out_channels != classes) {
      errors.Add(path,
                 absl::StrCat(out_channels, " does not match the data's ", classes, " classes"));
    }
  }
}

}  // namespace

void ValidateModel(const v1::JobSpec& spec, int64_t classes, Errors& errors) {
  const v1::ModelSpec& model = spec.model();
  const v1::Task task = spec.task();
  const int64_t image_size = spec.data().image_size();
  errors.AtLeast("model.parameter_budget", model.parameter_budget(), 0);
  if (model.fit_width_to_budget() && model.parameter_budget() <= 0) {
    errors.Add("model.fit_width_to_budget", "needs model.parameter_budget > 0");
  }
  switch (model.family_case()) {
    case v1::ModelSpec::FAMILY_NOT_SET:
      errors.Add("model", "no family set (classifier, unet or encoder_unet)");
      break;
    case v1::ModelSpec::kClassifier: {
      const v1::ClassifierSpec& c = model.classifier();
      if (task != v1::TASK_UNSPECIFIED && task != v1::TASK_CLASSIFICATION) {
        errors.Add("model.classifier",
                   absl::StrCat("a classifier needs task classification, not ", TaskName(task)));
      }
      ValidateClassifier(c, "model.classifier", /*as_encoder=*/false, errors);
      if (classes > 0 && c.num_classes() != classes) {
        errors.Add(
            "model.classifier.num_classes",
            absl::StrCat(c.num_classes(), " does not match the data's ", classes, " classes"));
      }
      if (image_size > 0 && image_size < TotalStride(c)) {
        errors.Add("data.image_size", absl::StrCat(image_size,
                                                   " is smaller than the classifier's total "
                                                   "stride ",
                                                   TotalStride(c)));
      }
      break;
    }
    case v1::ModelSpec::kUnet: {
      const v1::UNetSpec& u = model.unet();
      if (task == v1::TASK_CLASSIFICATION) {
        errors.Add("model.unet", "a U-Net needs a segmentation task, not classification");
      }
      errors.IntInRange("model.unet.in_channels", u.in_channels(), 1, kMaxInChannels);
      ValidateOutChannels("model.unet.out_channels", u.out_channels(), task, classes, errors);
      errors.IntInRange("model.unet.base_width", u.base_width(), 1, kMaxWidth);
      if (u.max_width() > kMaxWidth) {
        errors.IntInRange("model.unet.max_width", u.max_width(), 0, kMaxWidth);
      } else if (u.max_width() != 0 && !(u.max_width() >= u.base_width())) {
        errors.Add(
            "model.unet.max_width",
            absl::StrCat(u.max_width(), " must be 0 (no cap) or >= base_width ", u.base_width()));
      }
      errors.InRange("model.unet.dropout", u.dropout(), 0, 1, false, true);
      if (image_size > 0 && image_size % 16 != 0) {
        errors.Add("data.image_size", absl::StrCat(image_size, " must be divisible by 16 for a ",
                                                   "U-Net (4 downsamplings)"));
      }
      break;
    }
    case v1::ModelSpec::kEncoderUnet: {
      const v1::EncoderUNetSpec& e = model.encoder_unet();
      const std::string path = "model.encoder_unet";
      if (task == v1::TASK_CLASSIFICATION) {
        errors.Add(path, "an encoder U-Net needs a segmentation task, not classification");
      }
      ValidateClassifier(e.encoder(), path + ".encoder", /*as_encoder=*/true, errors);
      ValidateOutChannels(path + ".out_channels", e.out_channels(), task, classes, errors);
      errors.IntInRange(path + ".decoder_base_width", e.decoder_base_width(), 1, kMaxWidth);
      if (e.decoder_max_width() > kMaxWidth) {
        errors.IntInRange(path + ".decoder_max_width", e.decoder_max_width(), 0, kMaxWidth);
      } else if (e.decoder_max_width() != 0 && !(e.decoder_max_width() >= e.decoder_base_width())) {
        errors.Add(path + ".decoder_max_width",
                   absl::StrCat(e.decoder_max_width(), " must be 0 (no cap) or >= ",
                                "decoder_base_width ", e.decoder_base_width()));
      }
      const int64_t stride = TotalStride(e.encoder());
      if (image_size > 0 && image_size % stride != 0) {
        errors.Add("data.image_size",
                   absl::StrCat(image_size, " must be divisible by ", stride,
                                " (the encoder's total stride) for an encoder U-Net"));
      }
      const bool loads = e.encoder_mode() == v1::ENCODER_MODE_FROZEN ||
                         e.encoder_mode() == v1::ENCODER_MODE_FINE_TUNE;
      const bool has_checkpoint = !e.encoder_checkpoint().empty();
      const bool has_job = !e.encoder_job_id().empty();
      if (has_checkpoint && has_job) {
        errors.Add(path + ".encoder_job_id", "set encoder_checkpoint or encoder_job_id, not both");
      }
      if (loads && !has_checkpoint && !has_job) {
        errors.Add(path + ".encoder_checkpoint",
                   absl::StrCat("required for encoder_mode ", EncoderModeName(e.encoder_mode()),
                                " (or encoder_job_id)"));
      }
      if (!loads && (has_checkpoint || has_job)) {
        errors.Add(path + (has_checkpoint ? ".encoder_checkpoint" : ".encoder_job_id"),
                   "encoder_mode scratch trains the encoder from random initialisation; use "
                   "frozen or fine_tune to start from a classifier");
      }
      const bool fine_tune = e.encoder_mode() == v1::ENCODER_MODE_FINE_TUNE;
      if (e.has_unfreeze_epoch()) {
        if (!fine_tune) {
          errors.Add(path + ".unfreeze_epoch", "only for encoder_mode fine_tune");
        } else if (!(e.unfreeze_epoch() >= 0 && e.unfreeze_epoch() < spec.training().epochs())) {
          errors.Add(path + ".unfreeze_epoch",
                     absl::StrCat(e.unfreeze_epoch(), " must be in [0, training.epochs ",
                                  spec.training().epochs(), ")"));
        }
      }
      if (e.has_encoder_lr_scale()) {
        if (!fine_tune) {
          errors.Add(path + ".encoder_lr_scale", "only for encoder_mode fine_tune");
        } else {
          errors.Positive(path + ".encoder_lr_scale", e.encoder_lr_scale());
        }
      }
      break;
    }
  }
}

int64_t ModelInChannels(const v1::ModelSpec& model) {
  switch (model.family_case()) {
    case v1::ModelSpec::kClassifier:
      return model.classifier().in_channels();
    case v1::ModelSpec::kUnet:
      return model.unet().in_channels();
    case v1::ModelSpec::kEncoderUnet:
      return model.encoder_unet().encoder().in_channels();
    default:
      return 0;
  }
}

}  // namespace selene::spec::internal
