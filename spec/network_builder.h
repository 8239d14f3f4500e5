// The network a resolved job spec describes, built with its initial weights: used by training
// (a new run) and by serving (a network to load a checkpoint into).
#pragma once

#include "common/status.h"
#include "models/network.h"
#include "spec/resolved_job_spec.h"

namespace selene::spec {

// Fits the width to the parameter budget when asked (the budget itself is enforced by
// models::BuildNetwork), builds the network with initial weights that depend on the spec's seed
// alone, then, for an encoder U-Net with an encoder_checkpoint, loads the classifier's weights
// into the encoder (its head is skipped). `load_encoder` false skips that load: a network that
// describes itself (--describe) or that a checkpoint with every weight fills next (serving).
// Errors name the spec's fields ("model.unet.base_width: ...", "model.parameter_budget: ...").
StatusOr<models::Network> BuildNetwork(const ResolvedJobSpec& spec, bool load_encoder = true);

}  // namespace selene::spec
