#include "server/train/threads.h"

#include <torch/torch.h>

#include <cstdlib>
#include <string>
#include <thread>

namespace selene::train {

int ConfigureTorchThreads(int requested) {
  int threads = requested;
  if (threads <= 0) {
    if (const char* env = std::getenv("SELENE_THREADS"); env != nullptr && *env != '\0') {
      threads = std::atoi(env);
    }
  }
  if (threads <= 0) threads = static_cast<int>(std::thread::hardware_concurrency());
  if (threads <= 0) threads = 1;
  torch::set_num_threads(threads);
  return torch::get_num_threads();
}

}  // namespace selene::train
