#include "spec/network_builder.h"

#include <torch/torch.h>

#include <exception>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "models/factory.h"
#include "models/seeded_randomness.h"
#include "server/train/checkpoint.h"

namespace selene::spec {
namespace {

// The encoder is a classifier without its head: tensors match by name, and the checkpoint's
// head tensors have no counterpart, so they are skipped.
Status LoadEncoderWeights(const std::string& path, models::NetworkImpl& network) {
  try {
    std::shared_ptr<torch::nn::Module> encoder;
    for (const auto& child : network.named_children()) {
      if (child.key() == "encoder") encoder = child.value();
    }
    if (encoder == nullptr) {
      return InternalError("encoder U-Net has no submodule named \"encoder\" to load into");
    }
    Status loaded = train::LoadModuleWeights(path, *encoder);
    if (!loaded.ok()) {
      return Status(loaded.code(), absl::StrCat("model.encoder_unet.encoder_checkpoint \"", path,
                                                "\": ", loaded.message()));
    }
    return OkStatus();
  } catch (const std::exception& e) {
    return InternalError(
        absl::StrCat("model.encoder_unet.encoder_checkpoint \"", path, "\": ", e.what()));
  }
}

}  // namespace

StatusOr<models::Network> BuildNetwork(const ResolvedJobSpec& spec, bool load_encoder) {
  models::NetworkSpec network_spec = spec.network();
  if (network_spec.fit_width_to_budget) {
    SELENE_ASSIGN_OR_RETURN(network_spec, models::FitWidthToBudget(network_spec));
  }
  StatusOr<models::Network> built = [&] {
    // The initial weights depend on the spec's seed alone, not on what ran before.
    models::SeededGlobalGenerator seeded(spec.proto().training().seed());
    return models::BuildNetwork(network_spec);
  }();
  SELENE_RETURN_IF_ERROR(built.status());
  models::Network network = std::move(built).value();
  const std::string& encoder_checkpoint = network_spec.encoder_unet.encoder_checkpoint;
  if (load_encoder && network_spec.family == models::Family::kEncoderUNet &&
      !encoder_checkpoint.empty()) {
    SELENE_RETURN_IF_ERROR(LoadEncoderWeights(encoder_checkpoint, *network));
  }
  return network;
}

}  // namespace selene::spec
