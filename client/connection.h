// The CLI's link to selene-server: one channel (insecure, or TLS with a root certificate), the
// bearer token and the deadline every unary call carries, and the mapping of a failed call to
// the one error line and exit code `selene help` documents.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "client/args.h"
#include "common/status.h"
#include "selene/v1/inference_service.grpc.pb.h"
#include "selene/v1/training_service.grpc.pb.h"

namespace selene::client {

// Exit codes of `selene` (listed by `selene help`).
enum ExitCode : int {
  kExitOk = 0,
  kExitFailed = 1,       // the operation failed (server error, job failed or cancelled)
  kExitUsage = 2,        // bad flags or arguments, unreadable spec, image or token file
  kExitUnreachable = 3,  // server unreachable (UNAVAILABLE, or a deadline passed)
  kExitAuth = 4,         // UNAUTHENTICATED: missing or wrong token
  kExitNotFound = 5,     // NOT_FOUND: unknown job, artifact or model
};

// Prints "selene: <message>" on stderr.
void PrintError(const std::string& message);

// Prints the line for a failed call and returns its exit code; `server` (HOST:PORT) goes into
// the unreachable message, since gRPC's own text does not always name it.
int ReportRpcError(const grpc::Status& status, const std::string& server);

// Prints a local problem (usage, unreadable file) and returns kExitUsage.
int ReportUsageError(const Status& status);

class Connection {
 public:
  // From --server (else $SELENE_SERVER, else 127.0.0.1:50051), --token-file, --tls-ca and
  // --timeout (seconds per call, default 30). An unreadable file is InvalidArgument.
  static StatusOr<std::unique_ptr<Connection>> Create(const ParsedArgs& args);

  // Adds the token and, unless `stream`, the deadline. Streams (watch, download) run as long as
  // data flows.
  void Prepare(grpc::ClientContext* context, bool stream = false) const;

  const std::string& server() const { return server_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  v1::TrainingService::Stub& training() { return *training_; }
  v1::InferenceService::Stub& inference() { return *inference_; }

  int Fail(const grpc::Status& status) const { return ReportRpcError(status, server_); }

 private:
  std::string server_;
  std::string token_;
  absl::Duration timeout_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::TrainingService::Stub> training_;
  std::unique_ptr<v1::InferenceService::Stub> inference_;
};

}  // namespace selene::client
