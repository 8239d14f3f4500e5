// selene-train: runs one job spec locally, without the server. Prints a header and one line per
// epoch, and writes best.pt, last.pt, history.csv, metrics.json, the exact spec (spec.json,
// --set overrides included), the data summary and the report (curves, samples, report.md,
// run_summary.json) into --out.
//
//   selene-train --spec FILE.json --out DIR [--set field.path=value ...] [--describe]
//                [--threads N] [--resume] [--data_root DIR] [--cache_dir DIR]
//   selene-train --spec FILE.json --inspect [--data_root DIR]     data summary, then exit
//   selene-train --compare DIR...                                 one table over finished runs
//
// --set may be repeated and its values may contain commas (repeated fields take comma lists),
// which absl's flags cannot express: main() takes every --set out of argv before Abseil parses
// the rest (common/cli_flags.h). Exit status: 0 done, 1 runtime failure, 2 bad usage or spec,
// 130 cancelled by Ctrl-C (last.pt is written; --resume continues).
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/cli_flags.h"
#include "common/number_format.h"
#include "common/run_folder.h"
#include "common/status.h"
#include "models/factory.h"
#include "server/data/data_summary.h"
#include "server/jobs/run_training.h"
#include "server/jobs/training_data.h"
#include "server/jobs/training_plan.h"
#include "server/report/main_metrics.h"
#include "server/report/run_comparison.h"
#include "server/train/threads.h"
#include "server/train/trainer.h"
#include "spec/enum_names.h"
#include "spec/json_io.h"
#include "spec/network_builder.h"
#include "spec/overrides.h"
#include "spec/resolved_job_spec.h"

ABSL_FLAG(std::string, spec, "", "Job spec to run (JSON, selene.v1.JobSpec).");
ABSL_FLAG(std::string, out, "", "Folder for checkpoints, history, metrics and spec.json.");
ABSL_FLAG(std::vector<std::string>, set, {},
          "field.path=value override of the spec, e.g. --set training.optimizer.lr=0.01; repeat "
          "for several. Values are taken whole (commas included: lists for repeated fields).");
ABSL_FLAG(bool, describe, false, "Print the model's stage summary and exit.");
ABSL_FLAG(int, threads, 0,
          "Intra-op threads; 0 = training.threads, else $SELENE_THREADS, else all cores.");
ABSL_FLAG(bool, resume, false, "Continue from --out/last.pt when it exists.");
ABSL_FLAG(std::string, data_root, "",
          "Folder data.path is relative to; default $SELENE_DATA_ROOT, else ./data.");
ABSL_FLAG(std::string, cache_dir, "",
          "Keep decoded images here so later runs skip decoding; default $SELENE_CACHE_DIR, "
          "else none.");
ABSL_FLAG(bool, inspect, false,
          "Check the spec's data set (counts, unreadable and unpaired files, sizes, class "
          "balance), print the summary and exit.");

namespace {

namespace fs = std::filesystem;
using selene::Status;
using selene::StatusOr;

constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;
constexpr int kExitCancelled = 130;  // 128 + SIGINT, as shells report it

std::atomic<bool> g_cancel{false};

extern "C" void OnInterrupt(int /*signal*/) {
  g_cancel.store(true);
  // A second Ctrl-C kills the process the usual way.
  std::signal(SIGINT, SIG_DFL);
}

// Holds the process's SIGINT handler while training runs, restoring the previous one after.
class InterruptGuard {
 public:
  InterruptGuard() { previous_ = std::signal(SIGINT, OnInterrupt); }
  ~InterruptGuard() { std::signal(SIGINT, previous_); }
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

 private:
  void (*previous_)(int) = SIG_DFL;
};

int Fail(int code, absl::string_view message) {
  std::cerr << "selene-train: " << message << std::endl;
  return code;
}

// A spec or model problem is the user's to fix (2); anything else failed at run time (1).
int ExitCodeFor(const Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
      return kExitUsage;
    default:
      return kExitRuntime;
  }
}

std::string DataRoot() {
  if (!absl::GetFlag(FLAGS_data_root).empty()) return absl::GetFlag(FLAGS_data_root);
  if (const char* env = std::getenv("SELENE_DATA_ROOT"); env != nullptr && *env != '\0') {
    return env;
  }
  return "data";
}

std::string CacheDir() {
  if (!absl::GetFlag(FLAGS_cache_dir).empty()) return absl::GetFlag(FLAGS_cache_dir);
  const char* env = std::getenv("SELENE_CACHE_DIR");
  return env != nullptr ? env : "";
}

// Decoding progress on stderr: redrawn in place on a terminal (a large data set takes a while
// the first time), one line at the end otherwise, so logs stay readable.
void ShowDecodeProgress(int64_t done, int64_t total) {
  static const bool terminal = isatty(STDERR_FILENO) != 0;
  if (terminal) {
    std::cerr << absl::StrFormat("\rdecoding %d/%d files (%.0f%%)", done, total,
                                 total > 0 ? 100.0 * done / total : 100.0);
  }
  if (done >= total) {
    std::cerr << (terminal ? "\n" : "") << "data: " << done << " files ready" << std::endl;
  }
}

std::string EpochLine(const selene::train::EpochRecord& record,
                      const selene::jobs::TrainingPlan& plan) {
  const int64_t epochs = plan.trainer.epochs;
  std::string line = absl::StrFormat("epoch %*d/%d  train_loss %.4f  val_loss %.4f",
                                     static_cast<int>(absl::StrCat(epochs).size()),
                                     record.epoch + 1, epochs, record.train_loss, record.val_loss);
  std::vector<std::string> names = selene::report::MainMetrics(plan.trainer.task);
  const std::string& monitor = plan.trainer.monitor;
  if (monitor != "val_loss" && monitor != "train_loss" &&
      std::find(names.begin(), names.end(), monitor) == names.end()) {
    names.insert(names.begin(), monitor);
  }
  for (const std::string& name : names) {
    const auto found = record.val_metrics.find(name);
    if (found == record.val_metrics.end()) continue;
    absl::StrAppendFormat(&line, "  %s%s %.4f", name, name == monitor ? "*" : "", found->second);
  }
  absl::StrAppendFormat(&line, "  lr %.3g  %.1f s  %.0f img/s", record.learning_rate,
                        record.seconds, record.images_per_second);
  return line;
}

std::string Header(const std::string& name, const selene::jobs::TrainingPlan& plan,
                   const selene::models::NetworkImpl& network,
                   const selene::train::TrainValSplit& data, int threads) {
  const selene::v1::JobSpec& resolved = plan.spec.proto();
  const selene::v1::TrainingSpec& t = resolved.training();
  const selene::spec::DataRequest& request = plan.spec.data();
  const int64_t classes = data.train.num_classes();
  return absl::StrCat(
      name, ": ", selene::train::TaskName(plan.trainer.task), ", ",
      selene::models::FamilyName(plan.spec.network().family), " model with ",
      selene::Grouped(selene::models::CountParameters(network)), " parameters, on ",
      selene::spec::DataKindName(request.kind), " data: ", selene::Grouped(data.train.size()),
      " training and ", selene::Grouped(data.val.size()), " validation images of ",
      request.image_size, "x", request.image_size, ", ", classes,
      classes == 1 ? " class" : " classes", ". ", t.epochs(), " epochs of batch ", t.batch_size(),
      ", ", selene::spec::EnumName(t.optimizer().kind(), selene::v1::OptimizerKind_descriptor()),
      " lr ", t.optimizer().lr(), ", loss ", selene::spec::LossName(t.loss().kind()),
      ", monitoring ", plan.trainer.monitor, "; device ", t.device(), ", ", threads,
      threads == 1 ? " thread." : " threads.");
}

// What a local run prints: the header when training starts, then one line per epoch.
class ConsoleObserver : public selene::jobs::RunObserver {
 public:
  ConsoleObserver(std::string name, int threads, std::string cache_dir, std::string checkpoint)
      : name_(std::move(name)),
        threads_(threads),
        cache_dir_(std::move(cache_dir)),
        checkpoint_(std::move(checkpoint)) {}

  void OnStart(const selene::jobs::TrainingPlan& plan, const selene::models::NetworkImpl& network,
               const selene::jobs::TrainingData& data,
               const selene::train::TrainingState& restored) override {
    plan_ = &plan;
    for (const std::string& warning : data.summary.warnings) {
      std::cerr << "warning: " << warning << "\n";
    }
    std::cout << Header(name_, plan, network, data.split, threads_) << "\n";
    if (restored.next_epoch > 0 || restored.next_step > 0) {
      std::cout << "resuming from " << checkpoint_ << "\n";
    }
    if (data.cache_hit) std::cout << "decoded images from the cache in " << cache_dir_ << "\n";
    std::cout << std::flush;
  }

  void OnEpoch(const selene::train::EpochRecord& record,
               const selene::train::TrainResult& /*so_far*/) override {
    std::cout << EpochLine(record, *plan_) << std::endl;
  }

 private:
  const std::string name_;
  const int threads_;
  const std::string cache_dir_;
  const std::string checkpoint_;  // last.pt, which a resumed run continues from
  const selene::jobs::TrainingPlan* plan_ = nullptr;
};

// Runs the spec; returns the exit status.
int Run(const std::vector<std::string>& overrides) {
  const std::string spec_path = absl::GetFlag(FLAGS_spec);
  const std::string out = absl::GetFlag(FLAGS_out);
  const bool describe = absl::GetFlag(FLAGS_describe);
  if (spec_path.empty()) return Fail(kExitUsage, "--spec FILE.json is required");
  const bool inspect = absl::GetFlag(FLAGS_inspect);
  if (out.empty() && !describe && !inspect) return Fail(kExitUsage, "--out DIR is required");

  StatusOr<selene::v1::JobSpec> loaded = selene::spec::LoadJobSpecFile(spec_path);
  if (!loaded.ok()) return Fail(kExitUsage, loaded.status().message());
  selene::v1::JobSpec spec = std::move(loaded).value();
  if (Status status = selene::spec::ApplyOverrides(&spec, overrides); !status.ok()) {
    return Fail(kExitUsage, absl::StrCat("--set ", status.message()));
  }
  StatusOr<selene::spec::ResolvedJobSpec> resolved = selene::spec::ResolvedJobSpec::Resolve(spec);
  if (!resolved.ok()) {
    return Fail(ExitCodeFor(resolved.status()),
                absl::StrCat(spec_path, ": ", resolved.status().message()));
  }
  StatusOr<selene::jobs::TrainingPlan> plan = selene::jobs::PlanTraining(*resolved);
  if (!plan.ok()) {
    return Fail(ExitCodeFor(plan.status()), absl::StrCat(spec_path, ": ", plan.status().message()));
  }
  const int threads = selene::train::ConfigureTorchThreads(
      absl::GetFlag(FLAGS_threads) > 0 ? absl::GetFlag(FLAGS_threads) : plan->threads);

  if (describe) {
    // The architecture needs no encoder weights.
    StatusOr<selene::models::Network> network =
        selene::spec::BuildNetwork(*resolved, /*load_encoder=*/false);
    if (!network.ok()) return Fail(ExitCodeFor(network.status()), network.status().message());
    std::cout << selene::models::FormatSummary(**network);
    return 0;
  }

  selene::jobs::RunEnvironment environment;
  environment.folder = selene::RunFolder(out);
  environment.name = spec.name().empty() ? fs::path(out).filename().string() : spec.name();
  environment.data_root = DataRoot();
  environment.data.decode_threads = threads;
  environment.data.cache_dir = CacheDir();
  environment.data.on_progress = ShowDecodeProgress;
  environment.stop = &g_cancel;
  environment.resume = absl::GetFlag(FLAGS_resume);
  // The exact spec the user ran, overrides included, so the run can be repeated.
  environment.write_submitted_spec = true;
  // Ctrl-C keeps the epochs done: their report is written, and --resume continues.
  environment.results_when_stopped = [] { return true; };

  if (inspect) {
    StatusOr<selene::jobs::TrainingData> data =
        selene::jobs::LoadTrainingData(plan->spec.data(), environment.data_root, environment.data);
    if (!data.ok()) return Fail(ExitCodeFor(data.status()), data.status().message());
    std::cout << selene::data::FormatDataSummary(data->summary);
    return 0;
  }

  ConsoleObserver observer(spec.name().empty() ? spec_path : spec.name(), threads, CacheDir(),
                           environment.folder.last_checkpoint());
  StatusOr<selene::jobs::TrainingRunResult> run;
  {
    InterruptGuard guard;
    run = selene::jobs::RunTraining(*plan, environment, observer);
  }
  if (!run.ok()) return Fail(ExitCodeFor(run.status()), run.status().message());
  if (!run->stopped_results.ok()) return Fail(kExitRuntime, run->stopped_results.message());
  const selene::train::TrainResult& result = run->training;

  if (run->stopped) {
    std::cout << "cancelled after " << result.history.size() << " epoch(s); --resume continues"
              << "\n";
  } else if (result.stopped_early) {
    std::cout << "stopped early: no improvement of " << plan->trainer.monitor << "\n";
  }
  if (result.best_epoch >= 0) {
    std::cout << absl::StrFormat("best epoch %d: %s %.4f\n", result.best_epoch + 1,
                                 plan->trainer.monitor, result.best_value);
  }
  std::vector<std::string> written;
  for (const char* file : {selene::RunFolder::kBestCheckpoint, selene::RunFolder::kLastCheckpoint,
                           selene::RunFolder::kHistory, selene::RunFolder::kMetrics,
                           selene::RunFolder::kSpec, selene::RunFolder::kDataSummary}) {
    if (environment.folder.Has(file)) written.push_back(file);
  }
  written.insert(written.end(), run->report_files.begin(), run->report_files.end());
  std::cout << "artifacts in " << out << ": " << absl::StrJoin(written, ", ") << std::endl;
  return run->stopped ? kExitCancelled : 0;
}

// selene-train --compare DIR...: one Markdown table over the runs' run_summary.json files.
int Compare(const std::vector<char*>& args) {
  const std::vector<std::string> dirs(args.begin() + 2, args.end());
  if (dirs.empty()) return Fail(kExitUsage, "--compare needs one or more run folders");
  StatusOr<std::string> table = selene::report::CompareRunDirs(dirs);
  if (!table.ok()) return Fail(ExitCodeFor(table.status()), table.status().message());
  std::cout << *table;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Runs a Selene job spec locally.\n"
      "  selene-train --spec FILE.json --out DIR [--set field.path=value ...] [--describe]\n"
      "               [--threads N] [--resume] [--data_root DIR] [--cache_dir DIR]\n"
      "  selene-train --spec FILE.json --inspect [--data_root DIR]\n"
      "  selene-train --compare DIR...");
  std::vector<char*> args(argv, argv + argc);
  if (args.size() >= 2 && absl::string_view(args[1]) == "--compare") return Compare(args);
  StatusOr<std::vector<std::string>> overrides = selene::ExtractRepeatedFlag("set", &args);
  if (!overrides.ok()) return Fail(kExitUsage, overrides.status().message());
  if (Status checked = selene::CheckFlags(args); !checked.ok()) {
    return Fail(kExitUsage, absl::StrCat(checked.message(), " (see --help)"));
  }
  absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
  try {
    return Run(*overrides);
  } catch (const std::exception& e) {  // torch reports errors as c10::Error
    return Fail(kExitRuntime, e.what());
  }
}
