// Builds networks from specs: validation with field-named errors, parameter budgets, fitting the
// base width to a budget, and the `--describe` summary table.
#include "models/factory.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "models/classifier.h"
#include "models/encoder_unet.h"
#include "models/unet.h"

namespace selene::models {
namespace {

// Far above any width that fits a sane budget; only bounds the search when nothing caps it.
constexpr int64_t kMaxSearchWidth = int64_t{1} << 16;
constexpr size_t kStages = 4;

// 2812417 -> "2,812,417": budgets and counts are read by people, in error messages too.
std::string FormatCount(int64_t value) {
  std::string digits = std::to_string(value < 0 ? -value : value);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return value < 0 ? "-" + out : out;
}

std::string FormatDouble(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

Status AtLeast(const std::string& field, int64_t value, int64_t minimum) {
  if (value >= minimum) return OkStatus();
  return InvalidArgumentError(field + ": " + std::to_string(value) +
                              " must be >= " + std::to_string(minimum));
}

Status OneOrTwo(const std::string& field, int64_t value) {
  if (value == 1 || value == 2) return OkStatus();
  return InvalidArgumentError(field + ": " + std::to_string(value) + " must be 1 or 2");
}

Status DropoutInRange(const std::string& field, double value) {
  if (value >= 0.0 && value < 1.0) return OkStatus();
  return InvalidArgumentError(field + ": " + FormatDouble(value) + " must be in [0, 1)");
}

// Enums arrive from protos and JSON through casts, so out-of-range values are possible.
template <typename Enum>
Status EnumInRange(const std::string& field, Enum value, Enum last) {
  const int raw = static_cast<int>(value);
  if (raw >= 0 && raw <= static_cast<int>(last)) return OkStatus();
  return InvalidArgumentError(field + ": " + std::to_string(raw) + " is not a known value");
}

Status StageVector(const std::string& field, const std::vector<int64_t>& values) {
  if (values.size() == kStages) return OkStatus();
  return InvalidArgumentError(field + ": " + std::to_string(values.size()) +
                              " entries, must have " + std::to_string(kStages));
}

// `as_encoder`: the head (num_classes, dropout) is ignored, so it is not checked.
Status ValidateClassifier(const std::string& prefix, const ClassifierOptions& options,
                          bool as_encoder) {
  SELENE_RETURN_IF_ERROR(AtLeast(prefix + ".in_channels", options.in_channels, 1));
  if (!as_encoder && options.head) {
    SELENE_RETURN_IF_ERROR(AtLeast(prefix + ".num_classes", options.num_classes, 1));
    SELENE_RETURN_IF_ERROR(DropoutInRange(prefix + ".dropout", options.dropout));
  }
  SELENE_RETURN_IF_ERROR(AtLeast(prefix + ".stem_width", options.stem_width, 1));
  SELENE_RETURN_IF_ERROR(OneOrTwo(prefix + ".stem_stride", options.stem_stride));
  SELENE_RETURN_IF_ERROR(EnumInRange(prefix + ".block", options.block, BlockType::kBottleneck));
  SELENE_RETURN_IF_ERROR(StageVector(prefix + ".stage_widths", options.stage_widths));
  SELENE_RETURN_IF_ERROR(StageVector(prefix + ".stage_blocks", options.stage_blocks));
  SELENE_RETURN_IF_ERROR(StageVector(prefix + ".stage_strides", options.stage_strides));
  for (size_t s = 0; s < kStages; ++s) {
    const std::string index = "[" + std::to_string(s) + "]";
    SELENE_RETURN_IF_ERROR(AtLeast(prefix + ".stage_widths" + index, options.stage_widths[s], 1));
    SELENE_RETURN_IF_ERROR(AtLeast(prefix + ".stage_blocks" + index, options.stage_blocks[s], 1));
    SELENE_RETURN_IF_ERROR(OneOrTwo(prefix + ".stage_strides" + index, options.stage_strides[s]));
  }
  return OkStatus();
}

Status ValidateUNet(const std::string& prefix, const UNetOptions& options) {
  SELENE_RETURN_IF_ERROR(AtLeast(prefix + ".in_channels", options.in_channels, 1));
  SELENE_RETURN_IF_ERROR(AtLeast(prefix + ".out_channels", options.out_channels, 1));
  SELENE_RETURN_IF_ERROR(AtLeast(prefix + ".base_width", options.base_width, 1));
  SELENE_RETURN_IF_ERROR(AtLeast(prefix + ".max_width", options.max_width, 0));
  SELENE_RETURN_IF_ERROR(
      EnumInRange(prefix + ".downsample", options.downsample, Downsample::kStridedConv));
  SELENE_RETURN_IF_ERROR(EnumInRange(prefix + ".upsample", options.upsample, Upsample::kBilinear));
  return DropoutInRange(prefix + ".dropout", options.dropout);
}

Status ValidateEncoderUNet(const std::string& prefix, const EncoderUNetOptions& options) {
  SELENE_RETURN_IF_ERROR(
      ValidateClassifier(prefix + ".encoder", options.encoder, /*as_encoder=*/true));
  SELENE_RETURN_IF_ERROR(AtLeast(prefix + ".out_channels", options.out_channels, 1));
  SELENE_RETURN_IF_ERROR(AtLeast(prefix + ".decoder_base_width", options.decoder_base_width, 1));
  SELENE_RETURN_IF_ERROR(AtLeast(prefix + ".decoder_max_width", options.decoder_max_width, 0));
  SELENE_RETURN_IF_ERROR(EnumInRange(prefix + ".upsample", options.upsample, Upsample::kBilinear));
  SELENE_RETURN_IF_ERROR(
      EnumInRange(prefix + ".encoder_mode", options.encoder_mode, EncoderMode::kFineTune));
  SELENE_RETURN_IF_ERROR(AtLeast(prefix + ".unfreeze_epoch", options.unfreeze_epoch, 0));
  if (!(options.encoder_lr_scale > 0.0) || !std::isfinite(options.encoder_lr_scale)) {
    return InvalidArgumentError(
        prefix + ".encoder_lr_scale: " + FormatDouble(options.encoder_lr_scale) + " must be > 0");
  }
  return OkStatus();
}

Status ValidateSpec(const NetworkSpec& spec) {
  const std::string& prefix = spec.field_prefix;
  SELENE_RETURN_IF_ERROR(AtLeast(prefix + "parameter_budget", spec.parameter_budget, 0));
  switch (spec.family) {
    case Family::kClassifier:
      return ValidateClassifier(prefix + "classifier", spec.classifier, /*as_encoder=*/false);
    case Family::kUNet:
      return ValidateUNet(prefix + "unet", spec.unet);
    case Family::kEncoderUNet:
      return ValidateEncoderUNet(prefix + "encoder_unet", spec.encoder_unet);
  }
  return InvalidArgumentError(prefix + "family: " + std::to_string(static_cast<int>(spec.family)) +
                              " is not a known value");
}

// Builds without validation or budget. Torch throws on what validation missed (or on memory);
// no exception leaves this floor.
StatusOr<Network> Construct(const NetworkSpec& spec) {
  try {
    switch (spec.family) {
      case Family::kClassifier:
        return Network(std::make_shared<ClassifierImpl>(spec.classifier));
      case Family::kUNet:
        return Network(std::make_shared<UNetImpl>(spec.unet));
      case Family::kEncoderUNet:
        return Network(std::make_shared<EncoderUNetImpl>(spec.encoder_unet));
    }
  } catch (const c10::Error& e) {
    return InvalidArgumentError("building the " + FamilyName(spec.family) +
                                " failed: " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return InternalError("building the " + FamilyName(spec.family) + " failed: " + e.what());
  }
  return InvalidArgumentError("family: " + std::to_string(static_cast<int>(spec.family)) +
                              " is not a known value");
}

StatusOr<int64_t> CountUnchecked(const NetworkSpec& spec) {
  SELENE_ASSIGN_OR_RETURN(Network network, Construct(spec));
  return CountParameters(*network);
}

// The classifier's stem and stage widths scaled together so that the smallest becomes `base`,
// keeping their ratios (rounded; at least 1). Monotone in `base`.
ClassifierOptions ScaleClassifier(const ClassifierOptions& options, int64_t base) {
  int64_t smallest = options.stem_width;
  for (int64_t width : options.stage_widths) smallest = std::min(smallest, width);
  auto scale = [&](int64_t width) {
    return std::max<int64_t>(1, (2 * width * base + smallest) / (2 * smallest));
  };
  ClassifierOptions scaled = options;
  scaled.stem_width = scale(options.stem_width);
  for (int64_t& width : scaled.stage_widths) width = scale(width);
  return scaled;
}

// What "base width" means for each family, for fitting it to a budget.
struct WidthKnob {
  std::string field;
  int64_t current = 1;
  int64_t limit = kMaxSearchWidth;  // a wider base gives the same model (capped widths)
  std::function<NetworkSpec(int64_t)> with;
};

WidthKnob KnobFor(const NetworkSpec& spec) {
  WidthKnob knob;
  switch (spec.family) {
    case Family::kClassifier: {
      knob.field = "classifier smallest width";
      knob.current = spec.classifier.stem_width;
      for (int64_t width : spec.classifier.stage_widths)
        knob.current = std::min(knob.current, width);
      knob.with = [spec](int64_t base) {
        NetworkSpec fitted = spec;
        fitted.classifier = ScaleClassifier(spec.classifier, base);
        return fitted;
      };
      break;
    }
    case Family::kUNet:
      knob.field = "unet.base_width";
      knob.current = spec.unet.base_width;
      if (spec.unet.max_width > 0) knob.limit = spec.unet.max_width;
      knob.with = [spec](int64_t base) {
        NetworkSpec fitted = spec;
        fitted.unet.base_width = base;
        return fitted;
      };
      break;
    case Family::kEncoderUNet:
      knob.field = "encoder_unet.decoder_base_width";
      knob.current = spec.encoder_unet.decoder_base_width;
      if (spec.encoder_unet.decoder_max_width > 0) {
        knob.limit = spec.encoder_unet.decoder_max_width;
      }
      knob.with = [spec](int64_t base) {
        NetworkSpec fitted = spec;
        fitted.encoder_unet.decoder_base_width = base;
        return fitted;
      };
      break;
  }
  return knob;
}

}  // namespace

StatusOr<NetworkSpec> FitWidthToBudget(const NetworkSpec& spec) {
  SELENE_RETURN_IF_ERROR(ValidateSpec(spec));
  const int64_t budget = spec.parameter_budget;
  if (budget <= 0) {
    return InvalidArgumentError(spec.field_prefix + "parameter_budget: " + std::to_string(budget) +
                                " must be > 0 to fit the width to it");
  }
  const WidthKnob knob = KnobFor(spec);
  auto count = [&](int64_t width) { return CountUnchecked(knob.with(width)); };

  // Invariant: `fits` fits the budget (0 = none known yet); `over` does not (or is past the
  // limit). Each model is built once; the count grows roughly with width^2, so steps of 1.25x
  // never build one much over the budget.
  int64_t fits = 0;
  int64_t over = knob.limit + 1;
  int64_t width = std::clamp<int64_t>(knob.current, 1, knob.limit);
  SELENE_ASSIGN_OR_RETURN(int64_t parameters, count(width));
  if (parameters <= budget) {
    fits = width;
    while (fits < knob.limit) {
      width = std::min(knob.limit, std::max(fits + 1, fits + fits / 4));
      SELENE_ASSIGN_OR_RETURN(parameters, count(width));
      if (parameters > budget) {
        over = width;
        break;
      }
      fits = width;
    }
  } else {
    over = width;
    while (fits == 0) {
      if (over == 1) {
        return InvalidArgumentError(
            spec.field_prefix + "parameter_budget: even the narrowest model (" + spec.field_prefix +
            knob.field + " 1) has " + FormatCount(parameters) + " parameters, over the budget of " +
            FormatCount(budget));
      }
      width = std::max<int64_t>(1, std::min(over - 1, over - over / 5));
      SELENE_ASSIGN_OR_RETURN(parameters, count(width));
      if (parameters <= budget) {
        fits = width;
      } else {
        over = width;
      }
    }
  }
  while (over - fits > 1) {
    width = fits + (over - fits) / 2;
    SELENE_ASSIGN_OR_RETURN(parameters, count(width));
    if (parameters <= budget) {
      fits = width;
    } else {
      over = width;
    }
  }
  return knob.with(fits);
}

StatusOr<int64_t> CountSpecParameters(const NetworkSpec& spec) {
  SELENE_RETURN_IF_ERROR(ValidateSpec(spec));
  if (!spec.fit_width_to_budget) return CountUnchecked(spec);
  SELENE_ASSIGN_OR_RETURN(NetworkSpec fitted, FitWidthToBudget(spec));
  return CountUnchecked(fitted);
}

StatusOr<Network> BuildNetwork(const NetworkSpec& spec) {
  SELENE_RETURN_IF_ERROR(ValidateSpec(spec));
  NetworkSpec fitted = spec;
  if (spec.fit_width_to_budget) {
    SELENE_ASSIGN_OR_RETURN(fitted, FitWidthToBudget(spec));
  }
  SELENE_ASSIGN_OR_RETURN(Network network, Construct(fitted));
  const int64_t parameters = CountParameters(*network);
  if (spec.parameter_budget > 0 && parameters > spec.parameter_budget) {
    return InvalidArgumentError(spec.field_prefix + "parameter_budget: model has " +
                                FormatCount(parameters) + " parameters, over the budget of " +
                                FormatCount(spec.parameter_budget));
  }
  return network;
}

std::string FormatSummary(const NetworkImpl& network) {
  std::vector<StageSummary> rows = network.summary();
  const int64_t total = CountParameters(network);
  int64_t listed = 0;
  for (const StageSummary& row : rows) listed += row.parameters;
  // Parameters no stage claims still count: the total must add up.
  if (listed != total) rows.push_back({"(other)", 0, 0, 0, total - listed});

  const std::vector<std::string> headers = {"stage", "in", "out", "stride", "parameters"};
  std::vector<std::vector<std::string>> cells;
  for (const StageSummary& row : rows) {
    cells.push_back({row.name, std::to_string(row.in_channels), std::to_string(row.out_channels),
                     std::to_string(row.stride), FormatCount(row.parameters)});
  }
  cells.push_back({"total", "", "", "", FormatCount(total)});
  std::vector<size_t> widths;
  for (const std::string& header : headers) widths.push_back(header.size());
  for (const auto& line : cells) {
    for (size_t c = 0; c < line.size(); ++c) widths[c] = std::max(widths[c], line[c].size());
  }

  std::ostringstream out;
  auto print = [&](const std::vector<std::string>& line) {
    std::string text;
    for (size_t c = 0; c < line.size(); ++c) {
      const std::string pad(widths[c] - line[c].size(), ' ');
      // Names left-aligned, numbers right-aligned so their digits line up.
      text += c == 0 ? line[c] + pad : "  " + pad + line[c];
    }
    out << text << "\n";
  };
  print(headers);
  size_t rule = 0;
  for (size_t width : widths) rule += width + 2;
  out << std::string(rule - 2, '-') << "\n";
  for (size_t i = 0; i + 1 < cells.size(); ++i) print(cells[i]);
  out << std::string(rule - 2, '-') << "\n";
  print(cells.back());
  return out.str();
}

}  // namespace selene::models
