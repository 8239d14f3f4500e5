// selene-bench: times Selene's engine on one of its default networks with synthetic tensors,
// training steps or inference, on CPU or CUDA. Built in the engine-only configuration too, so it
// runs on a machine that has LibTorch and nothing else (no absl: flags are parsed by hand).
//
//   selene-bench --model unet|classifier|encoder_unet --mode train|infer
//                [--batch 16] [--size 128] [--steps 20] [--warmup 3] [--device cpu|cuda]
//                [--threads N] [--precision fp32|bf16] [--channels_last] [--json]
//
// The training step is the Trainer's: bf16 runs the forward pass under autocast
// (server/train/mixed_precision.h), --channels_last stores the convolution weights and the
// batch NHWC (models::UseChannelsLast).
#include <sys/resource.h>
#include <torch/torch.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <utility>

#include "models/factory.h"
#include "server/train/loss.h"
#include "server/train/mixed_precision.h"
#include "server/train/optimization.h"
#include "server/train/threads.h"

namespace {

struct BenchOptions {
  std::string model = "unet";
  std::string mode = "train";
  int64_t batch = 16;
  int64_t size = 128;
  int64_t steps = 20;
  int64_t warmup = 3;
  std::string device = "cpu";
  int threads = 0;
  std::string precision = "fp32";
  bool channels_last = false;
  bool json = false;
};

[[noreturn]] void Usage(const std::string& problem) {
  std::cerr << "selene-bench: " << problem << "\n"
            << "usage: selene-bench --model unet|classifier|encoder_unet --mode train|infer "
               "[--batch N] [--size N] [--steps N] [--warmup N] [--device cpu|cuda[:i]] "
               "[--threads N] [--precision fp32|bf16] [--channels_last] [--json]\n";
  std::exit(2);
}

BenchOptions ParseArgs(int argc, char** argv) {
  BenchOptions options;
  std::map<std::string, std::string*> strings = {{"--model", &options.model},
                                                 {"--mode", &options.mode},
                                                 {"--device", &options.device},
                                                 {"--precision", &options.precision}};
  std::map<std::string, int64_t*> integers = {{"--batch", &options.batch},
                                              {"--size", &options.size},
                                              {"--steps", &options.steps},
                                              {"--warmup", &options.warmup}};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    if (size_t eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto take_value = [&]() {
      if (!value.empty()) return value;
      if (i + 1 >= argc) Usage(arg + " needs a value");
      return std::string(argv[++i]);
    };
    if (arg == "--channels_last") {
      options.channels_last = true;
    } else if (arg == "--json") {
      options.json = true;
    } else if (arg == "--threads") {
      options.threads = std::atoi(take_value().c_str());
    } else if (auto s = strings.find(arg); s != strings.end()) {
      *s->second = take_value();
    } else if (auto n = integers.find(arg); n != integers.end()) {
      const std::string text = take_value();
      char* end = nullptr;
      *n->second = std::strtoll(text.c_str(), &end, 10);
      if (*end != '\0' || *n->second < (arg == "--warmup" ? 0 : 1)) {
        Usage(arg + ": \"" + text + "\" is not a valid count");
      }
    } else if (arg == "--help" || arg == "-h") {
      Usage("help");
    } else {
      Usage("unknown flag " + arg);
    }
  }
  if (options.mode != "train" && options.mode != "infer") Usage("--mode: " + options.mode);
  if (options.precision != "fp32" && options.precision != "bf16") {
    Usage("--precision: \"" + options.precision + "\" is not fp32 or bf16");
  }
  if (options.size % 16 != 0) Usage("--size must be divisible by 16");
  return options;
}

selene::models::NetworkSpec SpecFor(const std::string& model) {
  selene::models::NetworkSpec spec;
  if (model == "unet") {
    spec.family = selene::models::Family::kUNet;
  } else if (model == "classifier") {
    spec.family = selene::models::Family::kClassifier;
  } else if (model == "encoder_unet") {
    spec.family = selene::models::Family::kEncoderUNet;
  } else {
    Usage("--model: unknown model \"" + model + "\"");
  }
  return spec;
}

double PeakResidentMiB() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;  // Linux reports KiB
}

// Resident memory now (Linux: /proc/self/statm, pages), 0 where unknown.
double ResidentMiB() {
  FILE* statm = std::fopen("/proc/self/statm", "r");
  if (statm == nullptr) return 0;
  long pages = 0, resident = 0;
  const int read = std::fscanf(statm, "%ld %ld", &pages, &resident);
  std::fclose(statm);
  return read == 2 ? resident * (sysconf(_SC_PAGESIZE) / 1048576.0) : 0;
}

// Freed memory glibc keeps for reuse after the steps, and what malloc_trim gives back: shows how
// much of a long-running process's resident memory after training is the allocator's cache.
std::pair<double, double> ResidentBeforeAndAfterTrim() {
  const double before = ResidentMiB();
#ifdef __GLIBC__
  malloc_trim(0);
#endif
  return {before, ResidentMiB()};
}

}  // namespace

int main(int argc, char** argv) {
  const BenchOptions options = ParseArgs(argc, argv);
  const int threads = selene::train::ConfigureTorchThreads(options.threads);
  const torch::Device device(options.device);
  const selene::models::NetworkSpec spec = SpecFor(options.model);
  auto network = selene::models::BuildNetwork(spec);
  if (!network.ok()) {
    std::cerr << "selene-bench: " << network.status() << "\n";
    return 1;
  }
  selene::models::Network net = *network;
  net->to(device);
  if (options.channels_last) selene::models::UseChannelsLast(*net);
  const selene::train::Precision precision = options.precision == "bf16"
                                                 ? selene::train::Precision::kBFloat16
                                                 : selene::train::Precision::kFloat32;
  const auto memory_format =
      options.channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;

  const bool classifier = spec.family == selene::models::Family::kClassifier;
  const auto task =
      classifier ? selene::train::Task::kClassification : selene::train::Task::kBinarySegmentation;
  torch::Tensor images = torch::randn({options.batch, 3, options.size, options.size}, device)
                             .contiguous(memory_format);
  torch::Tensor targets =
      classifier ? torch::randint(0, spec.classifier.num_classes, {options.batch},
                                  torch::TensorOptions(device).dtype(torch::kInt64))
                 : (torch::rand({options.batch, options.size, options.size}, device) > 0.9)
                       .to(torch::kFloat);
  selene::train::LossOptions loss_options;
  loss_options.kind =
      classifier ? selene::train::LossKind::kCrossEntropy : selene::train::LossKind::kBCEDice;
  selene::train::OptimizerOptions optimizer_options;
  auto optimizer = selene::train::MakeOptimizer(optimizer_options, net->parameter_groups());

  auto forward = [&]() {
    selene::train::AutocastScope autocast(precision, device);
    return net->forward(images).to(torch::kFloat);
  };
  auto step = [&]() {
    if (options.mode == "train") {
      net->train();
      optimizer->zero_grad();
      torch::Tensor loss = selene::train::ComputeLoss(loss_options, task, forward(), targets);
      loss.backward();
      optimizer->step();
    } else {
      net->eval();
      torch::NoGradGuard no_grad;
      forward();
    }
    if (device.is_cuda()) torch::cuda::synchronize();
  };

  for (int64_t i = 0; i < options.warmup; ++i) step();
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < options.steps; ++i) step();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double ms_per_step = 1000.0 * seconds / options.steps;
  const double images_per_second = options.batch * options.steps / seconds;
  const int64_t parameters = selene::models::CountParameters(*net);
  // The step's tensors are gone once the graph and the optimizer's temporaries are freed.
  const auto [resident_mib, resident_after_trim_mib] = ResidentBeforeAndAfterTrim();

  if (options.json) {
    std::cout << "{\"model\": \"" << options.model << "\", \"mode\": \"" << options.mode
              << "\", \"device\": \"" << options.device << "\", \"threads\": " << threads
              << ", \"batch\": " << options.batch << ", \"size\": " << options.size
              << ", \"precision\": \"" << options.precision << "\""
              << ", \"channels_last\": " << (options.channels_last ? "true" : "false")
              << ", \"parameters\": " << parameters << ", \"steps\": " << options.steps
              << ", \"ms_per_step\": " << ms_per_step
              << ", \"images_per_second\": " << images_per_second
              << ", \"peak_rss_mib\": " << PeakResidentMiB()
              << ", \"rss_after_mib\": " << resident_mib
              << ", \"rss_after_malloc_trim_mib\": " << resident_after_trim_mib << "}\n";
  } else {
    std::cout << options.model << " " << options.mode << " on " << options.device << " (" << threads
              << " threads), batch " << options.batch << " at " << options.size << "x"
              << options.size << ", " << options.precision
              << (options.channels_last ? ", channels-last" : "") << ", " << parameters
              << " parameters\n"
              << "  " << images_per_second << " images/s, " << ms_per_step << " ms/step, peak RSS "
              << PeakResidentMiB() << " MiB (" << resident_mib << " MiB resident after the "
              << "steps, " << resident_after_trim_mib << " MiB after malloc_trim)\n";
  }
  return 0;
}
