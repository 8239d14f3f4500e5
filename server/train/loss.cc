// Losses for the three tasks. Every loss here is written so that it never syncs with the
// device (no .item() in the training step) and never returns NaN for a batch that happens to
// hold no usable target: an all-ignored batch gives a zero loss that still has a graph.
#include "server/train/loss.h"

#include <cmath>
#include <sstream>
#include <string>

namespace selene::train {
namespace {

namespace F = torch::nn::functional;

// Half and bfloat16 logits (mixed precision) lose too much in log_softmax and in the large sums
// of Dice; losses are computed in float32 and the gradient flows back through the cast.
torch::Tensor AtLeastFloat(const torch::Tensor& logits) {
  const auto type = logits.scalar_type();
  if (type == torch::kHalf || type == torch::kBFloat16) return logits.to(torch::kFloat);
  return logits;
}

// Binary targets come as uint8, float or int64, [N, H, W] or already [N, 1, H, W]; the losses
// want them in the logits' dtype, device and shape.
torch::Tensor BinaryTargetsLike(const torch::Tensor& logits, const torch::Tensor& targets) {
  torch::Tensor t = targets.to(logits.device(), logits.scalar_type());
  if (t.dim() == logits.dim() - 1) t = t.unsqueeze(1);
  TORCH_CHECK(t.sizes() == logits.sizes(), "binary targets of shape ", targets.sizes(),
              " do not fit logits of shape ", logits.sizes());
  return t;
}

// Class-index targets as int64 on the logits' device, checked against [N, K, ...] logits.
torch::Tensor ClassTargetsLike(const torch::Tensor& logits, const torch::Tensor& targets) {
  TORCH_CHECK(logits.dim() >= 2, "class logits must be [N, K, ...], got ", logits.sizes());
  torch::Tensor t = targets.to(logits.device(), torch::kLong);
  std::vector<int64_t> expected = logits.sizes().vec();
  expected.erase(expected.begin() + 1);
  TORCH_CHECK(t.sizes() == torch::IntArrayRef(expected), "class targets of shape ", targets.sizes(),
              " do not fit logits of shape ", logits.sizes());
  return t;
}

// Reduces every dimension but the class dimension 1.
std::vector<int64_t> NonClassDims(int64_t rank) {
  std::vector<int64_t> dims = {0};
  for (int64_t d = 2; d < rank; ++d) dims.push_back(d);
  return dims;
}

// Shape that broadcasts a [K] vector along dimension 1 of a rank-`rank` tensor.
std::vector<int64_t> ClassShape(int64_t rank, int64_t k) {
  std::vector<int64_t> shape(rank, 1);
  shape[1] = k;
  return shape;
}

bool Finite(double v) { return std::isfinite(v); }

std::string Num(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

Status Invalid(const std::string& field, const std::string& what) {
  return InvalidArgumentError("loss." + field + ": " + what);
}

const char* KindName(LossKind kind) {
  switch (kind) {
    case LossKind::kBCE:
      return "bce";
    case LossKind::kDice:
      return "dice";
    case LossKind::kBCEDice:
      return "bce_dice";
    case LossKind::kCrossEntropy:
      return "cross_entropy";
    case LossKind::kCrossEntropyDice:
      return "cross_entropy_dice";
  }
  return "unknown";
}

bool KindFitsTask(LossKind kind, Task task) {
  switch (task) {
    case Task::kClassification:
      // Dice needs a spatial overlap to mean anything.
      return kind == LossKind::kCrossEntropy;
    case Task::kBinarySegmentation:
      // One logit channel: softmax cross entropy over a single class is identically zero.
      return kind == LossKind::kBCE || kind == LossKind::kDice || kind == LossKind::kBCEDice;
    case Task::kMultiClassSegmentation:
      return kind == LossKind::kCrossEntropy || kind == LossKind::kDice ||
             kind == LossKind::kCrossEntropyDice;
  }
  return false;
}

}  // namespace

Status ValidateLoss(const LossOptions& options, Task task, int64_t num_classes) {
  const std::string task_name = TaskName(task);
  if (!KindFitsTask(options.kind, task)) {
    return Invalid("kind", std::string(KindName(options.kind)) + " does not fit " + task_name);
  }
  const bool binary = task == Task::kBinarySegmentation;
  if (!binary && num_classes < 2) {
    return Invalid("kind", task_name + " needs at least 2 classes, the data has " +
                               std::to_string(num_classes));
  }

  // Fields that this kind would silently ignore are refused: a spec that sets them expects an
  // effect it would not get (the job spec checks the same; this guards direct engine users).
  const bool uses_bce = options.kind == LossKind::kBCE || options.kind == LossKind::kBCEDice;
  const bool uses_ce =
      options.kind == LossKind::kCrossEntropy || options.kind == LossKind::kCrossEntropyDice;
  const std::string kind_name = KindName(options.kind);
  if (!uses_ce && !options.class_weights.empty()) {
    return Invalid("class_weights", std::to_string(options.class_weights.size()) + " values, but " +
                                        kind_name + " on " + task_name +
                                        " has no class weights (cross entropy only)");
  }
  if (!uses_ce && options.label_smoothing != 0.0) {
    return Invalid("label_smoothing", Num(options.label_smoothing) + " does not apply to " +
                                          kind_name + " (cross entropy only)");
  }
  if (!uses_bce && options.pos_weight != 1.0) {
    return Invalid("pos_weight",
                   Num(options.pos_weight) + " does not apply to " + kind_name + " (bce only)");
  }

  if (!Finite(options.pos_weight) || options.pos_weight <= 0) {
    return Invalid("pos_weight", Num(options.pos_weight) + " must be > 0");
  }
  if (!options.class_weights.empty()) {
    const int64_t n = static_cast<int64_t>(options.class_weights.size());
    if (n != num_classes) {
      return Invalid("class_weights",
                     std::to_string(n) + " values for " + std::to_string(num_classes) + " classes");
    }
    double total = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double w = options.class_weights[i];
      if (!Finite(w) || w < 0) {
        return Invalid("class_weights", "value " + Num(w) + " at index " + std::to_string(i) +
                                            " must be finite and >= 0");
      }
      total += w;
    }
    if (total <= 0) return Invalid("class_weights", "all zero: no class would be trained");
  }
  if (!Finite(options.label_smoothing) || options.label_smoothing < 0 ||
      options.label_smoothing >= 1) {
    return Invalid("label_smoothing", Num(options.label_smoothing) + " must be in [0, 1)");
  }
  if (!Finite(options.dice_smooth) || options.dice_smooth < 0) {
    return Invalid("dice_smooth", Num(options.dice_smooth) + " must be >= 0");
  }

  // Combination weights: only those the kind uses are checked.
  auto check_weight = [](const char* field, double w) -> Status {
    if (!Finite(w) || w < 0) return Invalid(field, Num(w) + " must be finite and >= 0");
    return OkStatus();
  };
  if (options.kind == LossKind::kBCEDice) {
    SELENE_RETURN_IF_ERROR(check_weight("bce_weight", options.bce_weight));
    SELENE_RETURN_IF_ERROR(check_weight("dice_weight", options.dice_weight));
    if (options.bce_weight + options.dice_weight <= 0) {
      return Invalid("bce_weight", "bce_weight and dice_weight are both 0: nothing to train");
    }
  }
  if (options.kind == LossKind::kCrossEntropyDice) {
    SELENE_RETURN_IF_ERROR(check_weight("ce_weight", options.ce_weight));
    SELENE_RETURN_IF_ERROR(check_weight("dice_weight", options.dice_weight));
    if (options.ce_weight + options.dice_weight <= 0) {
      return Invalid("ce_weight", "ce_weight and dice_weight are both 0: nothing to train");
    }
  }
  return OkStatus();
}

torch::Tensor SoftDiceLoss(const torch::Tensor& logits, const torch::Tensor& targets,
                           double smooth) {
  const torch::Tensor x = AtLeastFloat(logits);
  const torch::Tensor t = BinaryTargetsLike(x, targets);
  const torch::Tensor p = torch::sigmoid(x);
  // One volume for the whole batch: a per-image mean would let images with tiny or empty masks
  // dominate, and matches how the validation Dice is counted.
  const torch::Tensor intersection = (p * t).sum();
  const torch::Tensor dice = (2 * intersection + smooth) / (p.sum() + t.sum() + smooth);
  return 1 - dice;
}

torch::Tensor MultiClassDiceLoss(const torch::Tensor& logits, const torch::Tensor& targets,
                                 int64_t ignore_index, double smooth) {
  const torch::Tensor x = AtLeastFloat(logits);
  const torch::Tensor t = ClassTargetsLike(x, targets);
  const int64_t rank = x.dim();
  const torch::Tensor valid = (t != ignore_index).unsqueeze(1).to(x.scalar_type());
  // Ignored pixels get a placeholder class 0 for the scatter and are then masked out of both
  // the one-hot target and the prediction, so they touch no class's counts.
  const torch::Tensor safe = torch::where(t != ignore_index, t, torch::zeros_like(t));
  const torch::Tensor one_hot = torch::zeros_like(x).scatter_(1, safe.unsqueeze(1), 1.0) * valid;
  const torch::Tensor p = torch::softmax(x, 1) * valid;

  const std::vector<int64_t> dims = NonClassDims(rank);
  const torch::Tensor intersection = (p * one_hot).sum(dims);
  const torch::Tensor cardinality = p.sum(dims) + one_hot.sum(dims);
  // The clamp only matters for smooth = 0 on a class with no pixel at all, which is then left
  // out below; without it its 0/0 would poison the gradient through the mask.
  const torch::Tensor dice = (2 * intersection + smooth) / (cardinality + smooth).clamp_min(1e-12);
  // Mean over the classes present in the (unignored) targets of the batch: an absent class has
  // no overlap to reward, and counting it would reward predicting nothing.
  const torch::Tensor present = (one_hot.sum(dims) > 0).to(x.scalar_type());
  return ((1 - dice) * present).sum() / present.sum().clamp_min(1);
}

torch::Tensor CrossEntropyLoss(const torch::Tensor& logits, const torch::Tensor& targets,
                               const std::vector<double>& class_weights, double label_smoothing,
                               int64_t ignore_index) {
  // Written out rather than F::cross_entropy so an all-ignored batch gives 0 instead of NaN
  // (torch's mean divides by zero) without a device sync to check for it. The definition is
  // PyTorch's, including its normalisation of the smoothing term by the weighted count:
  //   loss = (1 - e) * sum_i w[y_i] * -log p_i[y_i] / W
  //        + (e / K) * sum_i sum_c w[c] * -log p_i[c] / W,   W = sum_i w[y_i]
  // over the non-ignored i, with w = 1 when no weights are given (then W = count).
  const torch::Tensor x = AtLeastFloat(logits);
  const torch::Tensor t = ClassTargetsLike(x, targets);
  const int64_t k = x.size(1);
  const int64_t rank = x.dim();
  const torch::Tensor log_p = torch::log_softmax(x, 1);
  const torch::Tensor valid = t != ignore_index;
  const torch::Tensor safe = torch::where(valid, t, torch::zeros_like(t));
  const torch::Tensor valid_f = valid.to(x.scalar_type());

  // Per-element -log p[y], [N, ...]; out-of-range ids fail in gather as they do in torch.
  const torch::Tensor nll = -log_p.gather(1, safe.unsqueeze(1)).squeeze(1);
  torch::Tensor sample_weight = valid_f;
  torch::Tensor smooth_terms;  // per element sum_c w[c] * -log p[c]
  if (class_weights.empty()) {
    if (label_smoothing > 0) smooth_terms = -log_p.sum(1);
  } else {
    TORCH_CHECK(static_cast<int64_t>(class_weights.size()) == k,
                "cross entropy: ", class_weights.size(), " class weights for ", k, " classes");
    const torch::Tensor w = torch::tensor(class_weights).to(x.device(), x.scalar_type());
    sample_weight = w.index_select(0, safe.flatten()).view(safe.sizes()) * valid_f;
    if (label_smoothing > 0) smooth_terms = -(log_p * w.view(ClassShape(rank, k))).sum(1);
  }
  const torch::Tensor total_weight = sample_weight.sum();
  // A zero total weight (everything ignored) has zero numerators too: clamping gives 0, not NaN.
  const torch::Tensor denom =
      torch::where(total_weight > 0, total_weight, torch::ones_like(total_weight));
  torch::Tensor loss = (nll * sample_weight).sum() / denom;
  if (label_smoothing > 0) {
    const torch::Tensor smooth = (smooth_terms * valid_f).sum() / denom;
    loss = (1 - label_smoothing) * loss + (label_smoothing / static_cast<double>(k)) * smooth;
  }
  return loss;
}

torch::Tensor ComputeLoss(const LossOptions& options, Task task, const torch::Tensor& logits,
                          const torch::Tensor& targets) {
  switch (task) {
    case Task::kBinarySegmentation: {
      TORCH_CHECK(logits.dim() >= 2 && logits.size(1) == 1,
                  "binary segmentation wants logits [N, 1, H, W], got ", logits.sizes());
      const torch::Tensor x = AtLeastFloat(logits);
      auto bce = [&] {
        const torch::Tensor t = BinaryTargetsLike(x, targets);
        return F::binary_cross_entropy_with_logits(
            x, t,
            F::BinaryCrossEntropyWithLogitsFuncOptions().pos_weight(
                torch::full({1}, options.pos_weight, x.options())));
      };
      switch (options.kind) {
        case LossKind::kBCE:
          return bce();
        case LossKind::kDice:
          return SoftDiceLoss(x, targets, options.dice_smooth);
        case LossKind::kBCEDice:
          return options.bce_weight * bce() +
                 options.dice_weight * SoftDiceLoss(x, targets, options.dice_smooth);
        default:
          break;
      }
      break;
    }
    case Task::kClassification:
    case Task::kMultiClassSegmentation: {
      auto ce = [&] {
        return CrossEntropyLoss(logits, targets, options.class_weights, options.label_smoothing,
                                options.ignore_index);
      };
      auto dice = [&] {
        return MultiClassDiceLoss(logits, targets, options.ignore_index, options.dice_smooth);
      };
      switch (options.kind) {
        case LossKind::kCrossEntropy:
          return ce();
        case LossKind::kDice:
          if (task == Task::kMultiClassSegmentation) return dice();
          break;
        case LossKind::kCrossEntropyDice:
          if (task == Task::kMultiClassSegmentation) {
            return options.ce_weight * ce() + options.dice_weight * dice();
          }
          break;
        default:
          break;
      }
      break;
    }
  }
  TORCH_CHECK(false, "loss ", KindName(options.kind), " does not fit ", TaskName(task),
              " (ValidateLoss refuses this)");
  return torch::Tensor();
}

}  // namespace selene::train
