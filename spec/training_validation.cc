// Validation of the spec's training settings: epochs and batch, optimizer, schedule, loss
// against the task, monitor, early stopping, device and threads.
#include <set>
#include <string>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/text_limits.h"
#include "spec/enum_names.h"
#include "spec/limits.h"
#include "spec/spec_rules.h"
#include "spec/validation_internal.h"

namespace selene::spec::internal {
namespace {

// Metrics the Trainer reports per task (metrics.h) that can be monitored.
bool IsKnownMonitor(const std::string& monitor, v1::Task task) {
  if (monitor == "val_loss" || monitor == "train_loss") return true;
  static const std::set<std::string> kClassification = {"top1", "top5", "macro_f1"};
  static const std::set<std::string> kBinary = {"dice", "iou", "pixel_accuracy"};
  static const std::set<std::string> kMultiClass = {"mean_dice", "mean_iou", "pixel_accuracy"};
  const auto per_class = [&](std::initializer_list<const char*> prefixes) {
    for (const char* prefix : prefixes) {
      if (absl::StartsWith(monitor, prefix) && monitor.size() > std::string(prefix).size()) {
        return true;
      }
    }
    return false;
  };
  switch (task) {
    case v1::TASK_CLASSIFICATION:
      return kClassification.count(monitor) > 0 || per_class({"precision/", "recall/", "f1/"});
    case v1::TASK_BINARY_SEGMENTATION:
      return kBinary.count(monitor) > 0;
    case v1::TASK_MULTICLASS_SEGMENTATION:
      return kMultiClass.count(monitor) > 0 || per_class({"dice/", "iou/"});
    default:
      return true;
  }
}

std::string MonitorChoices(v1::Task task) {
  switch (task) {
    case v1::TASK_CLASSIFICATION:
      return "val_loss, train_loss, top1, top5, macro_f1, precision/<class>, recall/<class>, "
             "f1/<class>";
    case v1::TASK_BINARY_SEGMENTATION:
      return "val_loss, train_loss, dice, iou, pixel_accuracy";
    case v1::TASK_MULTICLASS_SEGMENTATION:
      return "val_loss, train_loss, mean_dice, mean_iou, pixel_accuracy, dice/<class>, "
             "iou/<class>";
    default:
      return "val_loss";
  }
}

bool IsValidDevice(const std::string& device) {
  if (device == "cpu" || device == "cuda" || device == kAnyDevice) return true;
  absl::string_view rest = device;
  if (!absl::ConsumePrefix(&rest, "cuda:") || rest.empty()) return false;
  for (char c : rest) {
    if (!absl::ascii_isdigit(c)) return false;
  }
  return true;
}

}  // namespace

void ValidateTraining(const v1::JobSpec& spec, int64_t classes, Errors& errors) {
  const v1::TrainingSpec& t = spec.training();
  const v1::Task task = spec.task();
  errors.IntInRange("training.epochs", t.epochs(), 1, kMaxEpochs);
  errors.IntInRange("training.batch_size", t.batch_size(), 1, kMaxBatchSize);

  // Optimizer.
  const v1::OptimizerSpec& o = t.optimizer();
  const bool sgd = o.kind() == v1::OPTIMIZER_KIND_SGD;
  errors.Positive("training.optimizer.lr", o.lr());
  errors.AtLeast("training.optimizer.weight_decay", o.weight_decay(), 0);
  if (o.has_momentum()) {
    if (!sgd) {
      errors.Add("training.optimizer.momentum", "only for sgd");
    } else {
      errors.InRange("training.optimizer.momentum", o.momentum(), 0, 1, false, true);
    }
  }
  if (o.nesterov() && !(sgd && o.momentum() > 0)) {
    errors.Add("training.optimizer.nesterov", "needs kind sgd with momentum > 0");
  }
  for (const auto& [name, has, value] : {std::make_tuple("beta1", o.has_beta1(), o.beta1()),
                                         std::make_tuple("beta2", o.has_beta2(), o.beta2())}) {
    if (!has) continue;
    const std::string path = absl::StrCat("training.optimizer.", name);
    if (sgd) {
      errors.Add(path, "only for adam and adamw");
    } else {
      errors.InRange(path, value, 0, 1, false, true);
    }
  }

  // Schedule.
  const v1::ScheduleSpec& s = t.schedule();
  const std::string sched = "training.schedule";
  if (s.warmup_epochs() != 0 && !(s.warmup_epochs() > 0 && s.warmup_epochs() < t.epochs())) {
    errors.Add(
        sched + ".warmup_epochs",
        absl::StrCat(s.warmup_epochs(), " must be in [0, training.epochs ", t.epochs(), ")"));
  }
  errors.InRange(sched + ".warmup_start_factor", s.warmup_start_factor(), 0, 1, true, false);
  const bool step = s.kind() == v1::SCHEDULE_KIND_STEP;
  const bool cosine = s.kind() == v1::SCHEDULE_KIND_COSINE;
  const bool plateau = s.kind() == v1::SCHEDULE_KIND_REDUCE_ON_PLATEAU;
  if (s.has_step_size()) {
    if (!step)
      errors.Add(sched + ".step_size", "only for kind step");
    else
      errors.AtLeast(sched + ".step_size", s.step_size(), 1);
  }
  if (s.has_gamma()) {
    if (!step && !plateau)
      errors.Add(sched + ".gamma", "only for kinds step and reduce_on_plateau");
    else
      errors.InRange(sched + ".gamma", s.gamma(), 0, 1, true, true);
  }
  if (s.has_min_factor()) {
    if (!cosine && !plateau) {
      errors.Add(sched + ".min_factor", "only for kinds cosine and reduce_on_plateau");
    } else {
      errors.InRange(sched + ".min_factor", s.min_factor(), 0, 1, false, true);
    }
  }
  if (s.has_plateau_patience()) {
    if (!plateau)
      errors.Add(sched + ".plateau_patience", "only for kind reduce_on_plateau");
    else
      errors.AtLeast(sched + ".plateau_patience", s.plateau_patience(), 0);
  }
  if (s.has_plateau_threshold()) {
    if (!plateau)
      errors.Add(sched + ".plateau_threshold", "only for kind reduce_on_plateau");
    else
      errors.AtLeast(sched + ".plateau_threshold", s.plateau_threshold(), 0);
  }

  // Loss.
  const v1::LossSpec& l = t.loss();
  const std::string loss = "training.loss";
  const v1::LossKind kind = l.kind();
  if (task != v1::TASK_UNSPECIFIED) {
    const char* needs = nullptr;
    if (IsBceLoss(kind) && task != v1::TASK_BINARY_SEGMENTATION) {
      needs = "binary_segmentation";
    } else if (kind == v1::LOSS_KIND_CROSS_ENTROPY_DICE &&
               task != v1::TASK_MULTICLASS_SEGMENTATION) {
      needs = "multiclass_segmentation";
    } else if (kind == v1::LOSS_KIND_DICE && !IsSegmentation(task)) {
      needs = "a segmentation task";
    } else if (kind == v1::LOSS_KIND_CROSS_ENTROPY && task == v1::TASK_BINARY_SEGMENTATION) {
      needs = "classification or multiclass_segmentation (binary: bce, dice or bce_dice)";
    }
    if (needs != nullptr) {
      errors.Add(loss + ".kind",
                 absl::StrCat(LossName(kind), " needs ", needs, ", not task ", TaskName(task)));
    }
  }
  if (l.has_pos_weight()) {
    if (!IsBceLoss(kind))
      errors.Add(loss + ".pos_weight", "only for bce and bce_dice");
    else
      errors.Positive(loss + ".pos_weight", l.pos_weight());
  }
  if (l.has_bce_weight()) {
    if (kind != v1::LOSS_KIND_BCE_DICE)
      errors.Add(loss + ".bce_weight", "only for bce_dice");
    else
      errors.AtLeast(loss + ".bce_weight", l.bce_weight(), 0);
  }
  if (l.has_ce_weight()) {
    if (kind != v1::LOSS_KIND_CROSS_ENTROPY_DICE) {
      errors.Add(loss + ".ce_weight", "only for cross_entropy_dice");
    } else {
      errors.AtLeast(loss + ".ce_weight", l.ce_weight(), 0);
    }
  }
  if (l.has_dice_weight()) {
    if (kind != v1::LOSS_KIND_BCE_DICE && kind != v1::LOSS_KIND_CROSS_ENTROPY_DICE) {
      errors.Add(loss + ".dice_weight", "only for bce_dice and cross_entropy_dice");
    } else {
      errors.AtLeast(loss + ".dice_weight", l.dice_weight(), 0);
    }
  }
  if (kind == v1::LOSS_KIND_BCE_DICE && l.bce_weight() == 0 && l.dice_weight() == 0) {
    errors.Add(loss, "bce_weight and dice_weight are both 0");
  }
  if (kind == v1::LOSS_KIND_CROSS_ENTROPY_DICE && l.ce_weight() == 0 && l.dice_weight() == 0) {
    errors.Add(loss, "ce_weight and dice_weight are both 0");
  }
  if (l.class_weights_size() > 0) {
    if (!IsCrossEntropyLoss(kind)) {
      errors.Add(loss + ".class_weights", "only for cross_entropy and cross_entropy_dice");
    } else if (classes > 0 && l.class_weights_size() != classes) {
      errors.Add(loss + ".class_weights",
                 absl::StrCat(l.class_weights_size(), " weights for ", classes, " classes"));
    }
    for (int i = 0; i < l.class_weights_size(); ++i) {
      errors.AtLeast(absl::StrCat(loss, ".class_weights[", i, "]"), l.class_weights(i), 0);
    }
  }
  if (l.has_label_smoothing()) {
    if (!IsCrossEntropyLoss(kind)) {
      errors.Add(loss + ".label_smoothing", "only for cross_entropy and cross_entropy_dice");
    } else {
      errors.InRange(loss + ".label_smoothing", l.label_smoothing(), 0, 1, false, true);
    }
  }
  if (l.has_ignore_index()) {
    const bool multiclass_dice =
        kind == v1::LOSS_KIND_DICE && task == v1::TASK_MULTICLASS_SEGMENTATION;
    if (!IsCrossEntropyLoss(kind) && !multiclass_dice) {
      errors.Add(loss + ".ignore_index", "only for cross-entropy losses and multi-class dice");
    } else if (classes > 0 && l.ignore_index() >= classes) {
      errors.Add(loss + ".ignore_index",
                 absl::StrCat(l.ignore_index(), " must be < the class count ", classes,
                              " (or negative for none)"));
    }
  }
  if (l.has_dice_smooth()) {
    if (!IsDiceLoss(kind))
      errors.Add(loss + ".dice_smooth", "only for dice losses");
    else
      errors.AtLeast(loss + ".dice_smooth", l.dice_smooth(), 0);
  }

  // The rest.
  errors.AtLeast("training.grad_clip_norm", t.grad_clip_norm(), 0);
  if (task != v1::TASK_UNSPECIFIED && !IsKnownMonitor(t.monitor(), task)) {
    errors.Add("training.monitor",
               absl::StrCat("\"", ForMessage(t.monitor()), "\" is not a metric of ", TaskName(task),
                            " (", MonitorChoices(task), ")"));
  } else if (t.monitor() == "top5" && classes > 0 && classes < 5) {
    errors.Add("training.monitor",
               absl::StrCat("top5 needs at least 5 classes, the data has ", classes));
  }
  const v1::EarlyStoppingSpec& es = t.early_stopping();
  if (!es.enabled() && (es.has_patience() || es.has_min_delta())) {
    errors.Add(es.has_patience() ? "training.early_stopping.patience"
                                 : "training.early_stopping.min_delta",
               "set training.early_stopping.enabled to use it");
  } else if (es.enabled()) {
    errors.AtLeast("training.early_stopping.patience", es.patience(), 1);
    errors.AtLeast("training.early_stopping.min_delta", es.min_delta(), 0);
  }
  if (!IsValidDevice(t.device())) {
    errors.Add("training.device",
               absl::StrCat("\"", ForMessage(t.device()), "\" must be auto, cpu, cuda or cuda:N"));
  }
  errors.InRange("training.threads", t.threads(), 0, 1024, false, false);
}

}  // namespace selene::spec::internal
