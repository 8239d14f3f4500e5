#include "server/api/selene_server.h"

#include <fcntl.h>
#include <netdb.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>
#include <utility>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/durable_file.h"
#include "server/api/grpc_server_metrics.h"
#include "server/api/job_admission.h"
#include "server/api/open_inference_rest.h"
#include "server/api/request_body_interceptor.h"
#include "server/http/metrics_endpoint.h"
#include "server/jobs/memory_estimate.h"
#include "server/metrics/device_memory.h"
#include "server/metrics/process_metrics.h"

namespace selene::api {
namespace {

namespace fs = std::filesystem;

// Why an HTTP endpoint did not start: an address that does not parse is the flag's fault
// (InvalidArgument naming it); anything else (the port taken) the environment's.
Status EndpointStartError(const char* flag, const Status& status) {
  if (status.code() != StatusCode::kInvalidArgument) return status;
  return InvalidArgumentError(absl::StrCat(flag, ": ", status.message()));
}

// --max_job_memory_mb in bytes must fit an int64.
constexpr int64_t kMaxJobMemoryMb = (int64_t{1} << 43) - 1;

// Start's contract: InvalidArgument means "fix the flags"; environment failures must not read
// as that, whatever code the lower floor chose.
Status EnvironmentError(const Status& status, absl::string_view context) {
  const absl::StatusCode code = status.code() == absl::StatusCode::kInvalidArgument
                                    ? absl::StatusCode::kFailedPrecondition
                                    : status.code();
  return Status(code, absl::StrCat(context, status.message()));
}

StatusOr<std::string> ReadFlagFile(const std::string& flag, const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return InvalidArgumentError(absl::StrCat(flag, " ", path, ": cannot be read"));
  std::stringstream text;
  text << file.rdbuf();
  if (file.bad()) return InvalidArgumentError(absl::StrCat(flag, " ", path, ": read failed"));
  return text.str();
}

// The PEM pair must parse and belong together, so a bad file is named here rather than
// surfacing as a port that cannot be opened.
Status CheckPemPair(const SeleneServerOptions& options, const std::string& cert,
                    const std::string& key) {
  BIO* cert_bio = BIO_new_mem_buf(cert.data(), static_cast<int>(cert.size()));
  X509* x509 = PEM_read_bio_X509(cert_bio, nullptr, nullptr, nullptr);
  BIO_free(cert_bio);
  if (x509 == nullptr) {
    return InvalidArgumentError(
        absl::StrCat("--tls_cert ", options.tls_cert_file, ": not a PEM certificate"));
  }
  BIO* key_bio = BIO_new_mem_buf(key.data(), static_cast<int>(key.size()));
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(key_bio, nullptr, nullptr, nullptr);
  BIO_free(key_bio);
  Status status;
  if (pkey == nullptr) {
    status = InvalidArgumentError(
        absl::StrCat("--tls_key ", options.tls_key_file, ": not a PEM private key"));
  } else if (X509_check_private_key(x509, pkey) != 1) {
    status = InvalidArgumentError(absl::StrCat("--tls_key ", options.tls_key_file,
                                               " does not match the certificate in --tls_cert ",
                                               options.tls_cert_file));
  }
  EVP_PKEY_free(pkey);
  X509_free(x509);
  return status;
}

StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeCredentials(
    const SeleneServerOptions& options) {
  const bool cert = !options.tls_cert_file.empty();
  const bool key = !options.tls_key_file.empty();
  if (cert != key) {
    return InvalidArgumentError(
        "--tls_cert and --tls_key go together: give both (TLS) or neither (plaintext)");
  }
  if (!cert) return grpc::InsecureServerCredentials();
  SELENE_ASSIGN_OR_RETURN(std::string cert_pem, ReadFlagFile("--tls_cert", options.tls_cert_file));
  SELENE_ASSIGN_OR_RETURN(std::string key_pem, ReadFlagFile("--tls_key", options.tls_key_file));
  SELENE_RETURN_IF_ERROR(CheckPemPair(options, cert_pem, key_pem));
  grpc::SslServerCredentialsOptions ssl;
  ssl.pem_key_cert_pairs.push_back({key_pem, cert_pem});
  return grpc::SslServerCredentials(ssl);
}

Status CheckOptions(const SeleneServerOptions& options) {
  const auto at_least = [](const char* flag, int64_t value, int64_t minimum) -> Status {
    if (value >= minimum) return OkStatus();
    return InvalidArgumentError(absl::StrCat(flag, " ", value, " must be >= ", minimum));
  };
  if (options.listen.empty()) return InvalidArgumentError("--listen: empty; e.g. 127.0.0.1:50051");
  if (options.state_dir.empty()) return InvalidArgumentError("--state_dir: empty");
  SELENE_RETURN_IF_ERROR(at_least("--jobs_per_device", options.jobs_per_device, 1));
  SELENE_RETURN_IF_ERROR(at_least("--queue_limit", options.queue_limit, 1));
  SELENE_RETURN_IF_ERROR(at_least("--max_job_memory_mb", options.max_job_memory_mb, 0));
  if (options.max_job_memory_mb > kMaxJobMemoryMb) {
    return InvalidArgumentError(absl::StrCat("--max_job_memory_mb ", options.max_job_memory_mb,
                                             " must be <= ", kMaxJobMemoryMb,
                                             " (its bytes must fit 64 bits)"));
  }
  SELENE_RETURN_IF_ERROR(at_least("--max_message_mb", options.max_message_bytes >> 20, 1));
  if (options.max_message_bytes > int64_t{2047} << 20) {
    return InvalidArgumentError(absl::StrCat("--max_message_mb ", options.max_message_bytes >> 20,
                                             " is over gRPC's limit of 2047"));
  }
  SELENE_RETURN_IF_ERROR(at_least("--max_batch_size", options.max_batch_size, 1));
  SELENE_RETURN_IF_ERROR(at_least("--max_loaded_models", options.max_loaded_models, 1));
  SELENE_RETURN_IF_ERROR(at_least("--max_image_pixels", options.max_image_pixels, 1));
  SELENE_RETURN_IF_ERROR(at_least("--inference_threads", options.inference_threads, 1));
  SELENE_RETURN_IF_ERROR(at_least("--training_threads", options.training_threads, 0));
  if (options.inference_precision != "fp32" && options.inference_precision != "bf16") {
    return InvalidArgumentError(absl::StrCat(
        "--inference_precision: \"", options.inference_precision, "\" is not fp32 or bf16"));
  }
  if (options.max_queue_delay < absl::ZeroDuration()) {
    return InvalidArgumentError("--max_queue_delay_ms must be >= 0");
  }
  if (options.shutdown_grace < absl::ZeroDuration()) {
    return InvalidArgumentError("--shutdown_grace_s must be >= 0");
  }
  return OkStatus();
}

// Creates the state dir and takes its lock: two servers on one job store would run each job
// twice.
StatusOr<int> LockStateDir(const std::string& state_dir) {
  std::error_code error;
  fs::create_directories(state_dir, error);
  if (error) {
    return FailedPreconditionError(
        absl::StrCat("state dir ", state_dir, ": cannot create: ", error.message()));
  }
  const std::string lock_path = (fs::path(state_dir) / "selene.lock").string();
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return FailedPreconditionError(absl::StrCat(
        "state dir ", state_dir, " is not writable: ", lock_path, ": ", std::strerror(errno)));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return FailedPreconditionError(absl::StrCat("state dir ", state_dir,
                                                  " is in use by another selene-server (",
                                                  lock_path, " is locked)"));
    }
    return FailedPreconditionError(absl::StrCat("state dir ", state_dir, ": cannot lock ",
                                                lock_path, ": ", std::strerror(err)));
  }
  return fd;
}

// A taken TCP port found before gRPC tries it, so the failure is one line naming the address
// rather than gRPC's own log of the bind error. Anything this cannot resolve is left to gRPC.
Status CheckPortFree(const std::string& listen) {
  if (absl::StartsWith(listen, "unix:")) return OkStatus();
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return OkStatus();
  std::string host = listen.substr(0, colon);
  const std::string port = listen.substr(colon + 1);
  if (port.empty() || port == "0") return OkStatus();
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found) != 0) {
    return OkStatus();
  }
  Status status;
  for (addrinfo* a = found; a != nullptr && status.ok(); a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 && errno == EADDRINUSE) {
      status =
          absl::UnavailableError(absl::StrCat("cannot listen on ", listen, ": the port is in use"));
    }
    ::close(fd);
  }
  ::freeaddrinfo(found);
  return status;
}

// Below this, a job could not write a checkpoint or the store a transaction.
constexpr int64_t kMinFreeBytes = int64_t{4} << 20;

// A store failure that means "the disk is full" (SQLite's own code, or an I/O error on a
// file system with next to no space left) rather than a broken file.
bool DiskFull(const std::string& state_dir, const Status& status) {
  if (status.code() == absl::StatusCode::kResourceExhausted) return true;
  const int64_t free_bytes = FreeBytesAt(state_dir);
  return free_bytes >= 0 && free_bytes < kMinFreeBytes;
}

std::string ReadOnlyReason(const std::string& state_dir, const Status& status) {
  return absl::StrCat("the disk of ", state_dir, " is full (", FreeBytesAt(state_dir),
                      " bytes free): ", status.message(), "; free space and restart to train");
}

std::string WithPort(const std::string& listen, int port) {
  if (absl::StartsWith(listen, "unix:")) return listen;
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return absl::StrCat(listen, ":", port);
  return absl::StrCat(listen.substr(0, colon), ":", port);
}

// "<host>:<pid>": unique among the servers of one store while they run.
std::string DefaultWorkerId() {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) std::strcpy(host, "localhost");
  return absl::StrCat(host, ":", ::getpid());
}

}  // namespace

SeleneServer::SeleneServer(SeleneServerOptions options) : options_(std::move(options)) {}

Status SeleneServer::OpenStore() {
  if (options_.store != "sqlite") {
    if (!absl::StartsWith(options_.store, "postgresql://") &&
        !absl::StartsWith(options_.store, "postgres://")) {
      return InvalidArgumentError(absl::StrCat(
          "--store: \"", options_.store,
          "\" is neither sqlite nor a PostgreSQL URI (postgresql://user@host:5432/db)"));
    }
    std::string password;
    if (!options_.store_password_file.empty()) {
      SELENE_ASSIGN_OR_RETURN(password,
                              ReadFlagFile("--store_password_file", options_.store_password_file));
      password = std::string(absl::StripTrailingAsciiWhitespace(password));
    }
    StatusOr<std::unique_ptr<jobs::JobStore>> store =
        jobs::JobStore::OpenPostgres(options_.store, password);
    if (!store.ok()) return EnvironmentError(store.status(), "--store: ");
    store_ = std::move(store).value();
    return OkStatus();
  }
  const std::string& state_dir = options_.state_dir;
  const std::string db = (fs::path(state_dir) / "selene.db").string();
  StatusOr<std::unique_ptr<jobs::JobStore>> store = jobs::JobStore::Open(db);
  if (!store.ok() && DiskFull(state_dir, store.status())) {
    // Refusing to start would also stop inference, and a restart loop would not free a byte:
    // serve what can be served, and say why nothing can be trained.
    read_only_reason_ = ReadOnlyReason(state_dir, store.status());
    store = jobs::JobStore::OpenReadOnly(db);
  }
  if (!store.ok()) return EnvironmentError(store.status(), "");
  store_ = std::move(store).value();
  return OkStatus();
}

SeleneServer::~SeleneServer() {
  Shutdown().IgnoreError();
  // The store's listener calls the scheduler, which goes before the store.
  if (store_ != nullptr) store_->StopFollowingOtherServers();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

void SeleneServer::Log(const std::string& line) const {
  if (options_.log) {
    options_.log(line);
  } else {
    std::cerr << "selene-server: " + line + "\n" << std::flush;
  }
}

StatusOr<std::unique_ptr<SeleneServer>> SeleneServer::Start(SeleneServerOptions options) {
  std::unique_ptr<SeleneServer> server(new SeleneServer(std::move(options)));
  try {
    SELENE_RETURN_IF_ERROR(server->Build());
  } catch (const std::exception& e) {
    return InternalError(absl::StrCat("starting the server: ", e.what()));
  }
  return server;
}

Status SeleneServer::Build() {
  const SeleneServerOptions& o = options_;
  SELENE_RETURN_IF_ERROR(CheckOptions(o));
  if (!o.token_file.empty()) {
    StatusOr<std::unique_ptr<TokenAuth>> auth = TokenAuth::LoadFile(o.token_file);
    if (!auth.ok()) {
      return InvalidArgumentError(absl::StrCat("--token_file: ", auth.status().message()));
    }
    auth_ = std::move(auth).value();
  }
  SELENE_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials, MakeCredentials(o));
  {
    StatusOr<std::unique_ptr<jobs::DevicePool>> pool =
        jobs::DevicePool::Create(o.devices, o.jobs_per_device);
    if (!pool.ok()) {
      return InvalidArgumentError(absl::StrCat("--devices: ", pool.status().message()));
    }
    pool_ = std::move(pool).value();
  }

  worker_id_ = o.worker_id.empty() ? DefaultWorkerId() : o.worker_id;
  SELENE_ASSIGN_OR_RETURN(lock_fd_, LockStateDir(o.state_dir));
  SELENE_RETURN_IF_ERROR(OpenStore());
  store_->SetEventListener(hub_.Listener());
  metrics::AddProcessMetrics(&metrics_);
  metrics::AddDeviceMemoryMetrics(&metrics_);
  server_metrics_.CountJobsIn(store_.get());
  server_metrics_.Follow(&hub_);
  log_subscription_ = hub_.Subscribe("", [this](const v1::JobEvent& event) {
    if (!event.has_state_change()) return;
    const v1::StateChange& change = event.state_change();
    Log(absl::StrCat(event.job_id(), ": ", jobs::StateName(change.from_state()), " -> ",
                     jobs::StateName(change.to_state()),
                     change.reason().empty() ? "" : absl::StrCat(" (", change.reason(), ")")));
  });

  const std::string& artifact_root = o.artifact_root.empty() ? o.state_dir : o.artifact_root;
  jobs::JobRunnerOptions runner;
  runner.state_dir = artifact_root;
  runner.data_root = o.data_root;
  runner.cache_dir = o.cache_dir;
  const int hardware = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  runner.training_threads =
      o.training_threads > 0 ? o.training_threads : std::max(1, hardware - o.inference_threads);
  runner.progress_interval = o.progress_interval;
  runner.on_training_step = [this](const jobs::TrainingStepReport& step) {
    server_metrics_.OnTrainingStep(step);
  };
  runner_ = std::make_unique<jobs::JobRunner>(store_.get(), runner);
  jobs::SchedulerOptions scheduling;
  scheduling.poll_interval = o.scheduler_poll;
  scheduling.worker_id = worker_id_;
  scheduling.lease = o.lease;
  scheduling.on_lease_lost = [this](const std::string&) { server_metrics_.OnLeaseLost(); };
  scheduling.on_error = [this](const Status& status) {
    Log(absl::StrCat("scheduler: ", status.message()));
  };
  scheduler_ = std::make_unique<jobs::Scheduler>(store_.get(), runner_.get(), pool_.get(),
                                                 std::move(scheduling));
  server_metrics_.IdentifyWorker(worker_id_, store_->engine(),
                                 [this] { return scheduler_->running_count(); });
  // Other servers on a shared store: their events reach this server's watchers, their submits
  // wake its dispatcher, and their cancels stop the jobs running here.
  SELENE_RETURN_IF_ERROR(store_->FollowOtherServers([this](const v1::JobEvent& nudge) {
    hub_.Publish(nudge);
    scheduler_->OnOtherServerChange(nudge);
  }));

  catalog_ = std::make_unique<JobModelCatalog>(store_.get(), artifact_root);
  serving::ModelRegistryOptions registry;
  registry.max_loaded_models = o.max_loaded_models;
  registry.batcher.max_batch_size = o.max_batch_size;
  registry.batcher.max_queue_delay = o.max_queue_delay;
  registry.batcher.inference_threads = o.inference_threads;
  registry.model.bfloat16 = o.inference_precision == "bf16";
  registry.batcher.on_batch = [this](const serving::BatchReport& batch) {
    server_metrics_.OnBatch(batch);
  };
  registry.batcher.hold_dispatch = o.batcher_hold_dispatch;
  registry.batcher.before_batch = o.batcher_before_batch;
  registry_ = std::make_unique<serving::ModelRegistry>(catalog_.get(), registry);
  server_metrics_.CountModelsIn(registry_.get());
  serving::InferenceEngineOptions engine;
  engine.max_image_pixels = o.max_image_pixels;
  engine_ = std::make_unique<serving::InferenceEngine>(registry_.get(), engine);

  TrainingServiceOptions training;
  training.read_only_reason = read_only_reason_;
  training.state_dir = artifact_root;
  training.data_root = o.data_root;
  training.queue_limit = o.queue_limit;
  training.devices = pool_->devices();
  if (o.max_job_memory_mb > 0) {
    training.max_job_memory_bytes = o.max_job_memory_mb << 20;
  } else {
    training.max_job_memory_bytes = DefaultJobMemoryLimitBytes();
    training.max_job_memory_origin =
        absl::StrCat("--max_job_memory_mb (default: 80% of this machine's ",
                     jobs::FormatBytes(static_cast<double>(PhysicalMemoryBytes())), ")");
  }
  training_service_ = std::make_unique<TrainingServiceImpl>(store_.get(), scheduler_.get(), &hub_,
                                                            auth_.get(), std::move(training));
  InferenceCallsOptions inference;
  inference.workers =
      o.inference_workers > 0 ? o.inference_workers : std::max(4, 2 * o.max_batch_size);
  inference_calls_ = std::make_unique<InferenceCalls>(auth_.get(), &server_metrics_, inference);
  inference_service_ =
      std::make_unique<InferenceServiceImpl>(engine_.get(), inference_calls_.get());
  open_inference_ = std::make_unique<serving::OpenInference>(registry_.get(), engine_.get());
  open_inference_service_ =
      std::make_unique<OpenInferenceServiceImpl>(open_inference_.get(), inference_calls_.get());

  SELENE_RETURN_IF_ERROR(CheckPortFree(o.listen));
  if (!o.metrics_listen.empty()) {
    StatusOr<std::unique_ptr<http::HttpServer>> http =
        http::StartMetricsEndpoint(o.metrics_listen, &metrics_);
    if (!http.ok()) return EndpointStartError("--metrics_listen", http.status());
    metrics_http_ = std::move(http).value();
    metrics_address_ = WithPort(o.metrics_listen, metrics_http_->port());
  }
  if (!o.http_listen.empty()) {
    http::HttpServerOptions rest;
    rest.purpose = "REST";
    rest.tls_cert_file = o.tls_cert_file;  // checked with the gRPC credentials above
    rest.tls_key_file = o.tls_key_file;
    if (auth_ != nullptr) {
      rest.authenticate = [auth = auth_.get()](const std::string* authorization) {
        return auth->CheckHeader(authorization);
      };
    }
    rest.max_body_bytes = static_cast<size_t>(o.max_message_bytes);
    // Each request runs the engine on its connection's thread: as many as the gRPC side's
    // workers, so REST requests batch together as well.
    rest.threads = inference.workers;
    OpenInferenceRestOptions routes;
    routes.ready = [calls = inference_calls_.get()] { return !calls->draining(); };
    routes.metrics = &server_metrics_;
    StatusOr<std::unique_ptr<http::HttpServer>> http = http::HttpServer::Start(
        o.http_listen, OpenInferenceRoutes(open_inference_.get(), std::move(routes)),
        std::move(rest));
    if (!http.ok()) return EndpointStartError("--http_listen", http.status());
    rest_http_ = std::move(http).value();
    http_address_ = WithPort(o.http_listen, rest_http_->port());
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(o.listen, credentials, &port_);
  // gRPC sets SO_REUSEPORT by default, which would let a second server share the port silently.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(static_cast<int>(o.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(o.max_message_bytes));
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  // The body check first: the metrics count the status it sends.
  interceptors.push_back(MakeRequestBodyInterceptorFactory());
  interceptors.push_back(calls_.InterceptorFactory());
  interceptors.push_back(MakeGrpcMetricsInterceptorFactory(&metrics_));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.RegisterService(training_service_.get());
  builder.RegisterService(inference_service_.get());
  builder.RegisterService(open_inference_service_.get());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    server_.reset();
    return absl::UnavailableError(absl::StrCat("cannot listen on ", o.listen,
                                               " (port in use, or not an address of this host)"));
  }
  address_ = WithPort(o.listen, port_);
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
    health->SetServingStatus(v1::TrainingService::service_full_name(), true);
    health->SetServingStatus(v1::InferenceService::service_full_name(), true);
    health->SetServingStatus(inference::GRPCInferenceService::service_full_name(), true);
  }

  if (!read_only_reason_.empty()) {
    Log(absl::StrCat("read-only: ", read_only_reason_,
                     "; serving models and answering queries, not training"));
  } else if (Status started = scheduler_->Start(); !started.ok()) {
    // The recovery writes to the store: a disk that filled up since it opened lands here.
    if (!DiskFull(o.state_dir, started)) return EnvironmentError(started, "scheduler: ");
    read_only_reason_ = ReadOnlyReason(o.state_dir, started);
    training_service_->SetReadOnly(read_only_reason_);
    Log(absl::StrCat("read-only: ", read_only_reason_,
                     "; serving models and answering queries, not training"));
  }
  if (std::error_code error; !fs::is_directory(o.data_root, error)) {
    Log(absl::StrCat("warning: data root ", o.data_root,
                     " is not a folder; only synthetic data sets can be trained"));
  }
  return OkStatus();
}

Status SeleneServer::Shutdown() {
  absl::MutexLock lock(&shutdown_mu_);
  if (shut_down_) return shutdown_status_;
  shut_down_ = true;
  const absl::Time drain_deadline = absl::Now() + options_.shutdown_grace;
  // Health first, while the listener still answers, so load balancers and watchers move away
  // before anything is refused; open Watch streams are sent NOT_SERVING.
  if (server_ != nullptr) {
    if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
      health->SetServingStatus(false);
    }
  }
  // From here every new call of both services is UNAVAILABLE, and job watches end: last, so a
  // client whose watch ends finds both services refusing.
  if (inference_calls_ != nullptr) inference_calls_->StartDraining();
  if (training_service_ != nullptr) training_service_->Shutdown();
  // The drain happens here rather than in gRPC's Shutdown, which would cancel at once every call
  // whose request is still arriving when it starts (inference requests are large), and would
  // wait out the whole grace for health watches, which only their clients end. While the calls
  // in flight finish, the listener stays open and late arrivals are told UNAVAILABLE.
  if (!calls_.AwaitIdle(drain_deadline)) {
    Log(absl::StrCat("shutdown: ", calls_.in_flight(),
                     " calls still running at the grace deadline are cancelled"));
  }
  // REST has refused new requests since the drain began; the ones still running finish, then
  // its listener closes, before anything they use goes.
  if (rest_http_ != nullptr) rest_http_->Stop();
  // The gRPC listener closes; what is left (health watches, reflection streams, anything past the
  // deadline) is cancelled rather than waited for.
  if (server_ != nullptr) {
    server_->Shutdown(absl::ToChronoTime(absl::Now()));
    server_->Wait();
  }
  // Only now that no call can reach them: the inference workers, then the running jobs.
  if (inference_calls_ != nullptr) inference_calls_->Shutdown();
  if (scheduler_ != nullptr) {
    shutdown_status_ = scheduler_->Shutdown(absl::Now() + options_.shutdown_grace);
    if (!shutdown_status_.ok()) Log(std::string(shutdown_status_.message()));
  }
  // Unloading the models stops their batchers' threads now rather than at destruction.
  server_metrics_.CountModelsIn(nullptr);
  engine_.reset();
  registry_.reset();
  return shutdown_status_;
}

}  // namespace selene::api
