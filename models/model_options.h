// Plain options structs for the three network families, like torch's own `*Options`, plus the
// family-independent spec the factory builds from. No torch here: cheap to include anywhere.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace selene::models {

enum class BlockType { kBasic, kBottleneck };

struct ClassifierOptions {
  int64_t in_channels = 3;
  int64_t num_classes = 200;
  int64_t stem_width = 32;  // stem: 3x3 conv, stride `stem_stride`
  int64_t stem_stride = 2;
  BlockType block = BlockType::kBasic;
  std::vector<int64_t> stage_widths = {32, 64, 128, 256};  // output channels per stage
  std::vector<int64_t> stage_blocks = {2, 2, 2, 2};        // residual blocks per stage
  std::vector<int64_t> stage_strides = {1, 2, 2, 2};       // first block's stride per stage
  double dropout = 0.0;                                    // before the linear head
  bool head = true;  // false: no pooling/linear head; forward() is not valid, features() is
};

enum class Downsample { kMaxPool, kStridedConv };
enum class Upsample { kTransposedConv, kBilinear };

struct UNetOptions {
  int64_t in_channels = 3;
  int64_t out_channels = 1;  // 1: binary (sigmoid at inference); K: multi-class (softmax)
  int64_t base_width = 16;   // level-0 width; doubles per level
  int64_t max_width = 0;     // cap on any level's width; 0 = no cap
  Downsample downsample = Downsample::kMaxPool;
  Upsample upsample = Upsample::kTransposedConv;
  double dropout = 0.0;  // in the bottleneck
};

enum class EncoderMode {
  kScratch,   // encoder trained from random initialisation with the decoder
  kFrozen,    // encoder loaded and frozen: out of the optimizer, BatchNorm in eval
  kFineTune,  // encoder loaded, frozen until `unfreeze_epoch`, then trained at `encoder_lr_scale`
};

struct EncoderUNetOptions {
  ClassifierOptions encoder;  // `head` is ignored: the encoder never has one
  int64_t out_channels = 1;
  int64_t decoder_base_width = 16;  // decoder widths per level: base * 2^level (capped)
  int64_t decoder_max_width = 0;    // 0 = no cap
  Upsample upsample = Upsample::kBilinear;
  EncoderMode encoder_mode = EncoderMode::kScratch;
  int64_t unfreeze_epoch = 0;      // kFineTune: first epoch (0-based) the encoder trains
  double encoder_lr_scale = 0.1;   // kFineTune: encoder lr = base lr * this
  std::string encoder_checkpoint;  // classifier checkpoint to load the encoder from ("" = none)
};

enum class Family { kClassifier, kUNet, kEncoderUNet };

struct NetworkSpec {
  Family family = Family::kUNet;
  ClassifierOptions classifier;
  UNetOptions unet;
  EncoderUNetOptions encoder_unet;
  int64_t parameter_budget = 0;      // 0 = no budget
  bool fit_width_to_budget = false;  // pick the widest base width whose model fits the budget
  // Put before every field the factory names in an error ("unet.base_width: 0 must be >= 1"),
  // so a caller whose own fields these are gets messages in its terms: the job spec's
  // translation sets "model.".
  std::string field_prefix;
};

std::string FamilyName(Family family);

}  // namespace selene::models
