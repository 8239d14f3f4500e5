// Builds any network from a NetworkSpec, enforcing its parameter budget (and fitting the base
// width to it when asked), and formats the per-stage summary `--describe` prints.
#pragma once

#include <string>

#include "common/status.h"
#include "models/model_options.h"
#include "models/network.h"

namespace selene::models {

// Fails with InvalidArgument for impossible options (naming the field and value), and when the
// built model exceeds spec.parameter_budget (naming the count and the budget).
StatusOr<Network> BuildNetwork(const NetworkSpec& spec);

// The spec with its base width replaced by the widest that fits the budget (UNet: base_width;
// classifier: stem and stage widths scaled together; encoder U-Net: decoder_base_width).
// Fails when even the narrowest width does not fit.
StatusOr<NetworkSpec> FitWidthToBudget(const NetworkSpec& spec);

// Parameter count of the network `spec` describes, without keeping it.
StatusOr<int64_t> CountSpecParameters(const NetworkSpec& spec);

// A table of stages: name, in/out channels, stride, parameters, and the total.
std::string FormatSummary(const NetworkImpl& network);

}  // namespace selene::models
