// Parameter counting shared by every network, the factory's budgets and the summaries.
#include "models/network.h"

namespace selene::models {

int64_t CountParameters(const torch::nn::Module& module) {
  int64_t count = 0;
  for (const torch::Tensor& parameter : module.parameters(/*recurse=*/true)) {
    count += parameter.numel();
  }
  return count;
}

}  // namespace selene::models
