// Names of the network families as they appear in specs, logs and the CLI.
#include "models/model_options.h"

namespace selene::models {

std::string FamilyName(Family family) {
  switch (family) {
    case Family::kClassifier:
      return "classifier";
    case Family::kUNet:
      return "unet";
    case Family::kEncoderUNet:
      return "encoder_unet";
  }
  return "unknown";
}

}  // namespace selene::models
