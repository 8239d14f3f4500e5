// A U-Net whose encoder is a head-less Classifier, so a classifier trained on a large data set
// can be reused (scratch, frozen or fine-tuned) for segmentation. Weights are not loaded here:
// the training floor loads options.encoder_checkpoint into encoder() by tensor name.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "models/classifier.h"
#include "models/model_options.h"
#include "models/network.h"
#include "models/unet.h"

namespace selene::models {

// The decoder walks the encoder's features from deepest to shallowest (stage4, stage3, stage2,
// stage1, stem), then ends on a light full-resolution conv of the input ("input"), so the
// logits always have the input's H, W whatever the stem's stride. A feature at stride s sits
// on decoder level log2(s), of width decoder_base_width * 2^level (capped); a 1x1 adapter
// ("adapt_<stage>") maps encoder channels to that width only where they differ. Features at
// the same stride (stem and stage1 by default) are joined without upsampling.
//
// Submodules: "encoder" (a Classifier without head, same internal names, so a classifier
// checkpoint's tensors minus "head.*" load as "encoder.*"), "adapt_*", "up_stage3" ..
// "up_stem", "input", "up_input", "head".
class EncoderUNetImpl : public NetworkImpl {
 public:
  explicit EncoderUNetImpl(const EncoderUNetOptions& options = {});

  // images [N, C, H, W] -> logits [N, out_channels, H, W].
  torch::Tensor forward(torch::Tensor images) override;

  std::vector<StageSummary> summary() const override;

  // kScratch: {"decoder", 1.0}, {"encoder", 1.0}. kFrozen: {"decoder", 1.0} only.
  // kFineTune: {"decoder", 1.0}, {"encoder", encoder_lr_scale} from the start, so the optimizer
  // owns the encoder before it unfreezes (torch optimizers skip parameters without a gradient).
  std::vector<ParameterGroup> parameter_groups() override;

  // kFineTune: the encoder is frozen for epochs < unfreeze_epoch and trains from then on. A
  // function of the epoch alone, so resuming at any epoch gives the right state.
  void on_epoch_start(int64_t epoch) override;

  // The encoder's, the decoder blocks' and the input conv's BatchNorms folded into their convs.
  void fold_batch_norms() override;

  // Keeps a frozen encoder's BatchNorm in eval mode (running statistics untouched) even when
  // the model as a whole trains.
  void train(bool on = true) override;

  ClassifierImpl& encoder() { return *encoder_; }
  const ClassifierImpl& encoder() const { return *encoder_; }
  bool encoder_frozen() const { return encoder_frozen_; }

  // Decoder width of each encoder feature (stem, stage1..stage4), then of the "input" level.
  std::vector<int64_t> decoder_widths() const;
  const EncoderUNetOptions& options() const { return options_; }

 private:
  void SetEncoderFrozen(bool frozen);
  int64_t LevelWidth(int64_t level) const;

  EncoderUNetOptions options_;
  Classifier encoder_{nullptr};
  std::vector<std::string> feature_names_;   // "stem", "stage1", ...
  std::vector<int64_t> feature_levels_;      // log2 of each feature's stride
  std::vector<torch::nn::Conv2d> adapters_;  // per feature; nullptr where widths agree
  std::vector<UpBlock> up_;                  // up_[i] merges feature i (all but the last)
  torch::nn::Sequential input_{nullptr};     // full-resolution conv + BN + ReLU
  UpBlock up_input_{nullptr};
  torch::nn::Conv2d head_{nullptr};
  bool encoder_frozen_ = false;
};
TORCH_MODULE(EncoderUNet);

}  // namespace selene::models
