// Validation of the spec's data: the kind against the task, the path (relative, inside the data
// root), classes, sizes and split, augmentation and normalisation.
#include <google/protobuf/repeated_field.h>

#include <cmath>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/text_limits.h"
#include "spec/enum_names.h"
#include "spec/limits.h"
#include "spec/spec_rules.h"
#include "spec/validation_internal.h"

namespace selene::spec::internal {

namespace pb = ::google::protobuf;

void ValidateData(const v1::JobSpec& spec, int64_t classes, Errors& errors) {
  const v1::DataSpec& d = spec.data();
  const v1::Task task = spec.task();
  if (d.kind() == v1::DATA_KIND_UNSPECIFIED) {
    errors.Add("data.kind", absl::StrCat("not set (", EnumChoices(v1::DataKind_descriptor()), ")"));
    return;
  }
  const std::string kind = DataKindName(d.kind());
  const bool synthetic = IsSynthetic(d.kind());
  if (task != v1::TASK_UNSPECIFIED && !KindFitsTask(d.kind(), task)) {
    errors.Add("data.kind", absl::StrCat(kind, " data does not fit task ", TaskName(task)));
  }
  // Path.
  if (synthetic && !d.path().empty()) {
    errors.Add("data.path", absl::StrCat("synthetic data takes no path (kind ", kind, ")"));
  } else if (!synthetic) {
    if (d.path().empty()) {
      errors.Add("data.path", absl::StrCat("required for ", kind));
    } else if (absl::StartsWith(d.path(), "/")) {
      errors.Add("data.path",
                 absl::StrCat("\"", ForMessage(d.path()), "\" must be relative to the data root"));
    } else {
      for (absl::string_view part : absl::StrSplit(d.path(), '/')) {
        if (part == "..") {
          errors.Add("data.path", absl::StrCat("\"", ForMessage(d.path()),
                                               "\" must stay inside the data root (no '..')"));
          break;
        }
      }
    }
  }
  // Classes.
  const bool named = d.class_ids_size() > 0;
  if (named && d.has_num_classes()) {
    errors.Add("data.class_ids", "set data.num_classes or data.class_ids, not both");
  }
  if (named && d.kind() != v1::DATA_KIND_TINY_IMAGENET &&
      d.kind() != v1::DATA_KIND_SEGMENTATION_FOLDER) {
    errors.Add("data.class_ids", absl::StrCat("only for tiny_imagenet and segmentation_folder, "
                                              "not ",
                                              kind));
  }
  if (d.class_ids_size() > kMaxClasses) {
    errors.Add("data.class_ids", absl::StrCat(d.class_ids_size(), " names, at most ", kMaxClasses));
  }
  std::set<std::string> seen;
  for (const std::string& id : d.class_ids()) {
    if (id.empty()) {
      errors.Add("data.class_ids", "contains an empty name");
    } else if (!seen.insert(id).second) {
      errors.Add("data.class_ids", absl::StrCat("\"", ForMessage(id), "\" appears twice"));
    }
  }
  if (d.has_num_classes()) {
    const int64_t n = d.num_classes();
    if (task == v1::TASK_BINARY_SEGMENTATION && n != 1) {
      errors.Add("data.num_classes", absl::StrCat(n, " must be 1 for binary_segmentation"));
    } else if (d.kind() == v1::DATA_KIND_SYNTHETIC_SHAPES) {
      errors.InRange("data.num_classes", n, 2, 12, false, false);
    } else if (d.kind() == v1::DATA_KIND_SYNTHETIC_SHAPES_SEGMENTATION) {
      errors.InRange("data.num_classes", n, 1, 12, false, false);
    } else if (d.kind() == v1::DATA_KIND_TINY_IMAGENET) {
      errors.InRange("data.num_classes", n, 2, 200, false, false);
    } else if (task != v1::TASK_BINARY_SEGMENTATION) {
      errors.IntInRange("data.num_classes", n, 2, kMaxClasses);
    }
  } else if (!named && task == v1::TASK_MULTICLASS_SEGMENTATION && classes == 0) {
    errors.Add("data.num_classes", absl::StrCat("required for multiclass_segmentation on ", kind,
                                                " (or data.class_ids)"));
  }
  if (named && task == v1::TASK_CLASSIFICATION && d.class_ids_size() < 2) {
    errors.Add("data.class_ids", "classification needs at least 2 classes");
  }
  // Sizes and split.
  if (d.has_num_samples() && !synthetic) {
    errors.Add("data.num_samples", absl::StrCat("only for synthetic data, not ", kind));
  }
  errors.IntInRange("data.image_size", d.image_size(), kMinImageSize, kMaxImageSize);
  if (d.has_validation_fraction()) {
    errors.InRange("data.validation_fraction", d.validation_fraction(), 0, 1, true, true);
  }
  if (synthetic) {
    const int64_t n = d.num_samples();
    const double fraction = d.validation_fraction();
    if (n < 2 || n > kMaxNumSamples) {
      errors.IntInRange("data.num_samples", n, 2, kMaxNumSamples);
    } else if (fraction > 0 && fraction < 1 &&
               (std::floor(n * fraction) < 1 || n - std::ceil(n * fraction) < 1)) {
      errors.Add("data.num_samples", absl::StrCat(n, " with validation_fraction ", fraction,
                                                  " leaves an empty training or validation set"));
    }
  }
  // Augmentation.
  const v1::AugmentationSpec& a = d.augmentation();
  const std::string aug = "data.augmentation";
  errors.InRange(aug + ".rotation_degrees", a.rotation_degrees(), 0, 180, false, false);
  if (a.has_crop_scale_min() != a.has_crop_scale_max()) {
    errors.Add(aug + (a.has_crop_scale_min() ? ".crop_scale_max" : ".crop_scale_min"),
               "set crop_scale_min and crop_scale_max together");
  } else if (a.has_crop_scale_min()) {
    errors.InRange(aug + ".crop_scale_min", a.crop_scale_min(), 0, 1, true, false);
    errors.InRange(aug + ".crop_scale_max", a.crop_scale_max(), 0, 1, true, false);
    if (a.crop_scale_min() > a.crop_scale_max()) {
      errors.Add(
          aug + ".crop_scale_min",
          absl::StrCat(a.crop_scale_min(), " must be <= crop_scale_max ", a.crop_scale_max()));
    }
  }
  errors.InRange(aug + ".brightness", a.brightness(), 0, 1, false, false);
  errors.InRange(aug + ".contrast", a.contrast(), 0, 1, false, false);
  errors.InRange(aug + ".saturation", a.saturation(), 0, 1, false, false);
  // Normalisation.
  const int64_t in_channels = ModelInChannels(spec.model());
  for (const auto& [name, values] : {std::pair<std::string, const pb::RepeatedField<double>*>{
                                         "normalize_mean", &d.normalize_mean()},
                                     std::pair<std::string, const pb::RepeatedField<double>*>{
                                         "normalize_std", &d.normalize_std()}}) {
    if (values->empty()) continue;
    if (in_channels > 0 && values->size() != in_channels) {
      errors.Add("data." + name,
                 absl::StrCat(values->size(), " values for ", in_channels, " input channels"));
    }
    for (int i = 0; i < values->size(); ++i) {
      const std::string path = absl::StrCat("data.", name, "[", i, "]");
      if (name == "normalize_std") {
        errors.Positive(path, values->Get(i));
      } else {
        errors.InRange(path, values->Get(i), 0, 1, false, false);
      }
    }
  }
}

}  // namespace selene::spec::internal
