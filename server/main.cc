// selene-server: the Selene gRPC server. Trains queued job specs on the devices it is given and
// serves the models of succeeded jobs (selene.v1.TrainingService, selene.v1.InferenceService),
// with standard health checking and server reflection.
//
//   selene-server [--listen 127.0.0.1:50051] [--state_dir ./var] [--data_root ./data]
//                 [--devices cpu,cuda:0] [--token_file FILE] [--tls_cert FILE --tls_key FILE] ...
//
// Prints "selene-server REST at http://HOST:PORT/v2" (https with TLS; unless --http_listen is
// empty) and "selene-server metrics at http://HOST:PORT/metrics" (unless --metrics_listen is
// empty), then "selene-server listening on ADDRESS (state DIR)" once it serves. SIGTERM or SIGINT
// stops it gracefully: health NOT_SERVING, new calls UNAVAILABLE, calls in flight drain for up to
// --shutdown_grace_s, then running jobs checkpoint for up to --shutdown_grace_s again and resume
// at the next start; a second signal kills it at once. After the grace periods it exits whatever
// is still running: a job that could not stop in time (say, one in a long training step) is
// named in the log and resumes from its previous checkpoint at the next start. Exit status: 0 after
// a stop by signal (also when jobs were still stopping at the deadline), 1 when it cannot start
// (port taken, state dir unusable, job store corrupt) or when stopping hung past twice the grace
// plus kShutdownMargin, 2 for bad flags. --help lists the flags and exits 0.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/cli_flags.h"
#include "common/status.h"
#include "server/api/selene_server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "Address to serve on, host:port (port 0 picks a free port, printed when listening).");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9464",
          "Address of the Prometheus endpoint (GET /metrics), host:port; port 0 picks a free "
          "port; empty: no endpoint.");
ABSL_FLAG(std::string, http_listen, "127.0.0.1:8000",
          "Address of REST v2, the Open Inference Protocol over HTTP (/v2/...), host:port; same "
          "TLS and tokens as gRPC; port 0 picks a free port; empty: no REST.");
ABSL_FLAG(std::string, state_dir, "var",
          "Folder of the job store (selene.db), the jobs' artifacts (jobs/<id>/) and the cache.");
ABSL_FLAG(std::string, data_root, "data",
          "Folder that data.path of file data sets is relative to; nothing outside it is read.");
ABSL_FLAG(std::string, store, "sqlite",
          "The job queue: sqlite (<state_dir>/selene.db, this server alone) or a PostgreSQL URI "
          "(postgresql://user@host:5432/db) shared by several servers.");
ABSL_FLAG(std::string, store_password_file, "",
          "File holding the PostgreSQL password alone (PGPASSFILE works too).");
ABSL_FLAG(std::string, worker_id, "", "This server's name in the queue; default <host>:<pid>.");
ABSL_FLAG(int, lease_s, 30,
          "Seconds a running job stays this server's without a heartbeat (PostgreSQL store); "
          "then another server resumes it from its last checkpoint.");
ABSL_FLAG(std::string, artifact_root, "",
          "Folder of the job folders, shared by every server of a PostgreSQL store; default "
          "<state_dir>.");
ABSL_FLAG(std::vector<std::string>, devices, {},
          "Devices to train on, comma-separated (cpu, cuda, cuda:N); default every CUDA device, "
          "else the CPU.");
ABSL_FLAG(int, jobs_per_device, 1, "Training jobs each device runs at once.");
ABSL_FLAG(int, queue_limit, 100, "Most jobs waiting in the queue; more submits are refused.");
ABSL_FLAG(int64_t, max_job_memory_mb, 0,
          "Most memory one training job may need, in MiB, by the estimate made at submit "
          "(parameters, gradients, optimizer state, activations at the batch size, the decoded "
          "data set); larger jobs are refused. 0 = 80% of the machine's physical memory.");
ABSL_FLAG(int, max_message_mb, 64, "Largest gRPC message received or sent, in MiB.");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain for TLS (with --tls_key).");
ABSL_FLAG(std::string, tls_key, "", "PEM private key for TLS (with --tls_cert).");
ABSL_FLAG(std::string, token_file, "",
          "File of bearer tokens, one per line (# comments); calls must send "
          "'authorization: Bearer <token>'. Default: no authentication.");
ABSL_FLAG(int, max_batch_size, 8, "Largest inference batch per model.");
ABSL_FLAG(int64_t, max_image_pixels, int64_t{4096} * 4096,
          "Largest image (width x height) Segment and Classify accept.");
ABSL_FLAG(int, max_queue_delay_ms, 5,
          "Longest wait of a model's oldest queued request for others to batch with; waited "
          "only under concurrent load (a lone request on an idle model runs at once).");
ABSL_FLAG(std::string, inference_precision, "fp32",
          "fp32, or bf16: served forward passes under autocast to bfloat16 (faster on CPUs with "
          "AMX or AVX512-BF16, slower without; masks may differ at pixels whose logit is near 0).");
ABSL_FLAG(int, max_loaded_models, 4, "Models kept in memory (least recently used unloaded).");
ABSL_FLAG(int, inference_threads, 1, "Intra-op threads of each model's inference.");
ABSL_FLAG(int, training_threads, 0,
          "Intra-op threads of each training job; 0 = cores minus --inference_threads, at "
          "least 1.");
ABSL_FLAG(int, inference_workers, 0,
          "Inference requests worked on at once; 0 = twice --max_batch_size, at least 4.");
ABSL_FLAG(int, shutdown_grace_s, 10,
          "On SIGTERM/SIGINT, seconds calls in flight may take to finish (and again for running "
          "jobs to checkpoint).");
ABSL_FLAG(std::string, cache_dir, "", "Folder of decoded data sets; default <state_dir>/cache.");

namespace {

constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;

// Beyond the two grace periods (calls, then jobs): the unloading of models and the cancelled
// calls' last answers.
constexpr absl::Duration kShutdownMargin = absl::Seconds(5);

// --help, by topic; a flag missing here is listed under "Other flags".
const std::vector<selene::FlagGroup>& FlagGroups() {
  static const auto* const groups = new std::vector<selene::FlagGroup>{
      {"Serving",
       {"listen", "http_listen", "metrics_listen", "tls_cert", "tls_key", "token_file",
        "max_message_mb"}},
      {"Storage", {"state_dir", "data_root", "cache_dir"}},
      {"Job queue (one server, or a fleet on PostgreSQL)",
       {"store", "store_password_file", "worker_id", "lease_s", "artifact_root"}},
      {"Training",
       {"devices", "jobs_per_device", "training_threads", "queue_limit", "max_job_memory_mb"}},
      {"Inference",
       {"max_batch_size", "max_queue_delay_ms", "max_image_pixels", "inference_precision",
        "max_loaded_models", "inference_threads", "inference_workers"}},
      {"Shutdown", {"shutdown_grace_s"}},
  };
  return *groups;
}

// Ends the process now, skipping destructors: they would join threads that may not stop.
[[noreturn]] void ExitNow(int code) {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  std::_Exit(code);
}

int Fail(int code, absl::string_view message) {
  std::cerr << "selene-server: " << message << std::endl;
  return code;
}

selene::api::SeleneServerOptions OptionsFromFlags() {
  selene::api::SeleneServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  options.http_listen = absl::GetFlag(FLAGS_http_listen);
  options.state_dir = absl::GetFlag(FLAGS_state_dir);
  options.data_root = absl::GetFlag(FLAGS_data_root);
  options.cache_dir = absl::GetFlag(FLAGS_cache_dir);
  options.store = absl::GetFlag(FLAGS_store);
  options.store_password_file = absl::GetFlag(FLAGS_store_password_file);
  options.worker_id = absl::GetFlag(FLAGS_worker_id);
  options.lease = absl::Seconds(absl::GetFlag(FLAGS_lease_s));
  options.artifact_root = absl::GetFlag(FLAGS_artifact_root);
  for (const std::string& device : absl::GetFlag(FLAGS_devices)) {
    if (!device.empty()) options.devices.push_back(device);
  }
  options.jobs_per_device = absl::GetFlag(FLAGS_jobs_per_device);
  options.queue_limit = absl::GetFlag(FLAGS_queue_limit);
  options.max_job_memory_mb = absl::GetFlag(FLAGS_max_job_memory_mb);
  options.max_message_bytes = int64_t{absl::GetFlag(FLAGS_max_message_mb)} << 20;
  options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  options.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  options.token_file = absl::GetFlag(FLAGS_token_file);
  options.max_batch_size = absl::GetFlag(FLAGS_max_batch_size);
  options.max_image_pixels = absl::GetFlag(FLAGS_max_image_pixels);
  options.max_queue_delay = absl::Milliseconds(absl::GetFlag(FLAGS_max_queue_delay_ms));
  options.max_loaded_models = absl::GetFlag(FLAGS_max_loaded_models);
  options.inference_threads = absl::GetFlag(FLAGS_inference_threads);
  options.inference_precision = absl::GetFlag(FLAGS_inference_precision);
  options.training_threads = absl::GetFlag(FLAGS_training_threads);
  options.inference_workers = absl::GetFlag(FLAGS_inference_workers);
  options.shutdown_grace = absl::Seconds(absl::GetFlag(FLAGS_shutdown_grace_s));
  return options;
}

int Run() {
  // Blocked in every thread (they inherit this mask), so the signals reach sigwait below and
  // nothing runs in a signal handler.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  selene::api::SeleneServerOptions options = OptionsFromFlags();
  selene::StatusOr<std::unique_ptr<selene::api::SeleneServer>> started =
      selene::api::SeleneServer::Start(options);
  if (!started.ok()) {
    return Fail(
        started.status().code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitRuntime,
        started.status().message());
  }
  std::unique_ptr<selene::api::SeleneServer> server = std::move(started).value();
  if (!server->http_address().empty()) {
    std::cout << "selene-server REST at " << (options.tls_cert_file.empty() ? "http" : "https")
              << "://" << server->http_address() << "/v2" << std::endl;
  }
  if (!server->metrics_address().empty()) {
    std::cout << "selene-server metrics at http://" << server->metrics_address() << "/metrics"
              << std::endl;
  }
  std::cout << "selene-server listening on " << server->address() << " (state " << options.state_dir
            << ")" << std::endl;

  int signal_number = 0;
  while (sigwait(&stop_signals, &signal_number) != 0) {
  }
  std::cerr << "selene-server: " << (signal_number == SIGTERM ? "SIGTERM" : "SIGINT")
            << ": shutting down (grace " << absl::GetFlag(FLAGS_shutdown_grace_s) << " s)"
            << std::endl;
  // A second signal ends the process the default way; jobs then resume from their last
  // checkpoint at the next start.
  signal(SIGTERM, SIG_DFL);
  signal(SIGINT, SIG_DFL);
  pthread_sigmask(SIG_UNBLOCK, &stop_signals, nullptr);

  // The promise is an exit after the grace periods, whatever runs; should stopping hang anyway,
  // this thread keeps it.
  const absl::Duration bound = 2 * options.shutdown_grace + kShutdownMargin;
  absl::Notification stopped_in_time;
  std::thread watchdog([&stopped_in_time, bound] {
    if (stopped_in_time.WaitForNotificationWithTimeout(bound)) return;
    std::cerr << "selene-server: still stopping after " << absl::FormatDuration(bound)
              << "; exiting now (running jobs resume from their last checkpoint at the next "
                 "start)"
              << std::endl;
    ExitNow(kExitRuntime);
  });
  selene::Status stopped = server->Shutdown();
  if (!stopped.ok()) {
    // Jobs still stopping at the deadline (named in the message): the destructors would join
    // their threads for as long as they take.
    std::cerr << "selene-server: stopped without waiting for what still runs (" << stopped.message()
              << "); those jobs resume from their previous checkpoint at the next start"
              << std::endl;
    ExitNow(0);
  }
  server.reset();
  stopped_in_time.Notify();
  watchdog.join();
  std::cerr << "selene-server: stopped" << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "The Selene gRPC server: trains job specs and serves their models.\n"
      "  selene-server [--listen HOST:PORT] [--state_dir DIR] [--data_root DIR] "
      "[--devices LIST] ...");
  std::vector<char*> args(argv, argv + argc);
  if (selene::AsksForHelp(args)) {
    std::cout << selene::FlagsHelp(absl::ProgramUsageMessage(), FlagGroups(), "server/main.cc");
    return 0;
  }
  if (selene::Status checked = selene::CheckFlags(args); !checked.ok()) {
    return Fail(kExitUsage, absl::StrCat(checked.message(), " (see --help)"));
  }
  absl::ParseCommandLine(argc, argv);
  try {
    return Run();
  } catch (const std::exception& e) {
    return Fail(kExitRuntime, e.what());
  }
}
