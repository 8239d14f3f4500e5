// Training losses for the three tasks, chosen by a plain options struct.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "common/status.h"
#include "server/train/task.h"

namespace selene::train {

enum class LossKind {
  kBCE,               // binary: BCE-with-logits (pos_weight)
  kDice,              // binary: soft Dice on sigmoid; multi-class: soft Dice on softmax
  kBCEDice,           // binary: bce_weight * BCE + dice_weight * Dice
  kCrossEntropy,      // classification / multi-class: CE with class weights, smoothing, ignore
  kCrossEntropyDice,  // multi-class: ce_weight * CE + dice_weight * multi-class Dice
};

struct LossOptions {
  LossKind kind = LossKind::kCrossEntropy;
  double pos_weight = 1.0;            // BCE: weight of the positive class
  double bce_weight = 0.5;            // kBCEDice
  double dice_weight = 0.5;           // kBCEDice, kCrossEntropyDice
  double ce_weight = 0.5;             // kCrossEntropyDice
  std::vector<double> class_weights;  // CE: one per class, empty = uniform
  double label_smoothing = 0.0;       // CE
  int64_t ignore_index = -100;        // CE and multi-class Dice: targets with this id are ignored
  double dice_smooth = 1.0;           // soft Dice: (2I + s) / (P + T + s)
};

// Checks the options fit the task (e.g. BCE for classification is refused) and the class count.
Status ValidateLoss(const LossOptions& options, Task task, int64_t num_classes);

// logits and targets as documented in task.h. Returns a scalar tensor with grad.
torch::Tensor ComputeLoss(const LossOptions& options, Task task, const torch::Tensor& logits,
                          const torch::Tensor& targets);

// The pieces, exposed for tests and reuse.
torch::Tensor SoftDiceLoss(const torch::Tensor& logits, const torch::Tensor& targets,
                           double smooth);
torch::Tensor MultiClassDiceLoss(const torch::Tensor& logits, const torch::Tensor& targets,
                                 int64_t ignore_index, double smooth);
torch::Tensor CrossEntropyLoss(const torch::Tensor& logits, const torch::Tensor& targets,
                               const std::vector<double>& class_weights, double label_smoothing,
                               int64_t ignore_index);

}  // namespace selene::train
