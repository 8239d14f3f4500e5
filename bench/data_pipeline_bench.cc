// selene-data-bench: the input pipeline on real files (the Tiny ImageNet layout, or any spec's
// data kind), side by side in one run: decoding every file (what a pipeline that decodes each
// epoch pays every epoch), loading the decoded cache from disk, and a training epoch fed from the
// in-memory cache with augmentation, with the share of step time spent waiting for data. The
// first epoch from files (decode + epoch) is what bench/run.sh holds against a PyTorch
// DataLoader epoch, which decodes as it goes.
//
//   selene-data-bench --data ../shared/data/tiny-imagenet-200-10c [--classes 10] [--size 128]
//                     [--spec configs/classifier_tiny_imagenet.json] [--threads N] [--json]
//                     [--nocache_steps] [--set field.path=value ...]
#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/jobs/training_data.h"
#include "server/jobs/training_plan.h"
#include "server/train/batch_loader.h"
#include "server/train/threads.h"
#include "server/train/trainer.h"
#include "spec/json_io.h"
#include "spec/network_builder.h"
#include "spec/overrides.h"
#include "spec/resolved_job_spec.h"

ABSL_FLAG(std::string, data, "../shared/data/tiny-imagenet-200-10c",
          "A Tiny ImageNet-200 layout folder.");
ABSL_FLAG(std::string, spec, "configs/classifier_tiny_imagenet.json",
          "Spec whose model, batch and augmentation the training epoch uses.");
ABSL_FLAG(int, classes, 10, "Classes to read (the first N of wnids.txt; tiny_imagenet only).");
ABSL_FLAG(bool, cache_steps, true,
          "Also time writing and reading the decoded cache on disk (two more loads).");
ABSL_FLAG(std::vector<std::string>, set, {},
          "More spec overrides, field.path=value, comma-separated (applied last).");
ABSL_FLAG(int, size, 128, "Model input side (the cache keeps the files' 64x64).");
ABSL_FLAG(int, threads, 0, "Torch and decode threads; 0 = every hardware thread.");
ABSL_FLAG(bool, json, false, "Print one JSON object instead of the table.");

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int Fail(const std::string& message) {
  std::cerr << "selene-data-bench: " << message << std::endl;
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int threads = selene::train::ConfigureTorchThreads(absl::GetFlag(FLAGS_threads));
  const fs::path data = fs::absolute(absl::GetFlag(FLAGS_data));

  selene::StatusOr<selene::v1::JobSpec> spec =
      selene::spec::LoadJobSpecFile(absl::GetFlag(FLAGS_spec));
  if (!spec.ok()) return Fail(std::string(spec.status().message()));
  spec->mutable_training()->clear_early_stopping();  // one epoch: nothing to stop early
  std::vector<std::string> overrides = {absl::StrCat("data.path=", data.filename().string()),
                                        absl::StrCat("data.image_size=", absl::GetFlag(FLAGS_size)),
                                        "training.epochs=1", "training.schedule.warmup_epochs=0"};
  if (spec->data().kind() == selene::v1::DATA_KIND_TINY_IMAGENET) {
    overrides.push_back(absl::StrCat("data.num_classes=", absl::GetFlag(FLAGS_classes)));
  }
  for (const std::string& set : absl::GetFlag(FLAGS_set)) overrides.push_back(set);
  for (const std::string& set : overrides) {
    if (selene::Status s = selene::spec::ApplyOverride(&*spec, set); !s.ok()) {
      return Fail(std::string(s.message()));
    }
  }
  selene::StatusOr<selene::spec::ResolvedJobSpec> resolved =
      selene::spec::ResolvedJobSpec::Resolve(*spec);
  if (!resolved.ok()) return Fail(std::string(resolved.status().message()));
  selene::StatusOr<selene::jobs::TrainingPlan> plan = selene::jobs::PlanTraining(*resolved);
  if (!plan.ok()) return Fail(std::string(plan.status().message()));

  const std::string root = data.parent_path().string();
  selene::jobs::DataLoadOptions load;
  load.decode_threads = threads;

  // 1. Decoding every file, as a pipeline without a decoded cache does once per epoch.
  auto start = Clock::now();
  selene::StatusOr<selene::jobs::TrainingData> decoded =
      selene::jobs::LoadTrainingData(plan->spec.data(), root, load);
  const double decode_seconds = SecondsSince(start);
  if (!decoded.ok()) return Fail(std::string(decoded.status().message()));
  const int64_t files = decoded->split.train.size() + decoded->split.val.size();

  // 2. The decoded cache on disk: written by the first load, read by the second.
  double cache_seconds = 0;
  bool cache_hit = false;
  if (absl::GetFlag(FLAGS_cache_steps)) {
    const fs::path cache = fs::temp_directory_path() / "selene-data-bench-cache";
    fs::remove_all(cache);
    load.cache_dir = cache.string();
    if (auto first = selene::jobs::LoadTrainingData(plan->spec.data(), root, load); !first.ok()) {
      return Fail(std::string(first.status().message()));
    }
    start = Clock::now();
    selene::StatusOr<selene::jobs::TrainingData> cached =
        selene::jobs::LoadTrainingData(plan->spec.data(), root, load);
    cache_seconds = SecondsSince(start);
    if (!cached.ok()) return Fail(std::string(cached.status().message()));
    cache_hit = cached->cache_hit;
    fs::remove_all(cache);
  }

  // 3. One training epoch fed from memory, augmentation on the loader's thread.
  selene::StatusOr<selene::models::Network> network = selene::spec::BuildNetwork(plan->spec);
  if (!network.ok()) return Fail(std::string(network.status().message()));
  selene::train::Trainer trainer(*network, plan->trainer);
  selene::StatusOr<selene::train::TrainResult> result = trainer.Run(decoded->split);
  if (!result.ok()) return Fail(std::string(result.status().message()));
  const selene::train::EpochRecord& epoch = result->history.at(0);
  const double train_seconds = decoded->split.train.size() / epoch.images_per_second;

  // 4. The input pipeline alone: every training batch of an epoch made (resize to the input
  // size, augmentation, normalisation) by the loader's thread, on its one intra-op thread, with
  // nothing training: the CPU the pipeline takes from the training step in an epoch.
  selene::train::BatchLoaderOptions loader_options;
  loader_options.batch_size = plan->trainer.batch_size;
  loader_options.drop_last = decoded->split.train.size() > plan->trainer.batch_size;
  loader_options.seed = plan->trainer.seed;
  loader_options.normalization = plan->trainer.normalization;
  loader_options.resize_to = plan->trainer.input_size;
  loader_options.transform = plan->trainer.train_transform;
  selene::train::BatchLoader loader(decoded->split.train, loader_options);
  start = Clock::now();
  loader.StartEpoch(0);
  int64_t batches = 0;
  while (loader.Next()) ++batches;
  const double pipeline_seconds = SecondsSince(start);

  const double decode_share = decode_seconds / (decode_seconds + epoch.seconds);
  if (absl::GetFlag(FLAGS_json)) {
    std::cout << absl::StrFormat(
        "{\"files\": %d, \"train_images\": %d, \"val_images\": %d, \"threads\": %d, "
        "\"input_size\": %d, \"batch\": %d, \"cache_hit\": %s, "
        "\"decode_all_seconds\": %.3f, \"cache_load_seconds\": %.3f, "
        "\"epoch_seconds\": %.3f, \"train_seconds\": %.3f, \"images_per_second\": %.1f, "
        "\"data_wait_fraction\": %.4f, \"epoch_with_decoding_seconds\": %.3f, "
        "\"speedup_from_cache\": %.3f, \"train_loss\": %.4f, \"val_loss\": %.4f, "
        "\"pipeline_alone_seconds\": %.3f, \"pipeline_ms_per_batch\": %.2f, "
        "\"precision\": \"%s\", \"channels_last\": %s}\n",
        files, decoded->split.train.size(), decoded->split.val.size(), threads,
        absl::GetFlag(FLAGS_size), plan->trainer.batch_size, cache_hit ? "true" : "false",
        decode_seconds, cache_seconds, epoch.seconds, train_seconds, epoch.images_per_second,
        epoch.data_wait_fraction, epoch.seconds + decode_seconds,
        (epoch.seconds + decode_seconds) / epoch.seconds, epoch.train_loss, epoch.val_loss,
        pipeline_seconds, 1000.0 * pipeline_seconds / std::max<int64_t>(1, batches),
        selene::train::PrecisionName(plan->trainer.precision),
        plan->trainer.channels_last ? "true" : "false");
    return 0;
  }
  std::cout << absl::StrFormat(
      "input pipeline on %s: %d files, %d classes, model input %dx%d, %d threads\n"
      "  decode every file (OpenCV, %d threads)     %8.2f s  (%.0f files/s)\n"
      "  load the decoded cache from disk          %8.2f s  (%.0fx faster than decoding)\n"
      "  training epoch from memory (augmented)    %8.2f s  (%.0f img/s; waiting for data "
      "%.2f%% of training time)\n"
      "  same epoch if it decoded its files first  %8.2f s  (the cache saves %.1f%% of it)\n",
      data.string(), files, absl::GetFlag(FLAGS_classes), absl::GetFlag(FLAGS_size),
      absl::GetFlag(FLAGS_size), threads, threads, decode_seconds, files / decode_seconds,
      cache_seconds, cache_seconds > 0 ? decode_seconds / cache_seconds : 0.0, epoch.seconds,
      epoch.images_per_second, 100.0 * epoch.data_wait_fraction, epoch.seconds + decode_seconds,
      100.0 * decode_share);
  return 0;
}
