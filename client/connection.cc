#include "client/connection.h"

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace selene::client {
namespace {

StatusOr<std::string> ReadWholeFile(const std::string& path, const std::string& what) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return InvalidArgumentError(absl::StrCat("cannot read ", what, " ", path));
  std::stringstream bytes;
  bytes << file.rdbuf();
  return bytes.str();
}

}  // namespace

void PrintError(const std::string& message) { std::cerr << "selene: " << message << std::endl; }

int ReportRpcError(const grpc::Status& status, const std::string& server) {
  const std::string message = status.error_message();
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      PrintError(absl::StrCat("cannot reach selene-server at ", server, ": ", message));
      return kExitUnreachable;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      PrintError(absl::StrCat("selene-server at ", server,
                              " did not answer in time (--timeout): ", message));
      return kExitUnreachable;
    case grpc::StatusCode::UNAUTHENTICATED:
      PrintError(absl::StrCat("authentication failed: ", message, " (check --token-file)"));
      return kExitAuth;
    case grpc::StatusCode::NOT_FOUND:
      PrintError(message);
      return kExitNotFound;
    default:
      PrintError(message.empty() ? absl::StrCat("call failed with gRPC code ",
                                                static_cast<int>(status.error_code()))
                                 : message);
      return kExitFailed;
  }
}

int ReportUsageError(const Status& status) {
  PrintError(std::string(status.message()));
  return kExitUsage;
}

StatusOr<std::unique_ptr<Connection>> Connection::Create(const ParsedArgs& args) {
  auto connection = std::make_unique<Connection>();
  const char* env_server = std::getenv("SELENE_SERVER");
  connection->server_ = args.Get(
      "server", env_server != nullptr && *env_server != '\0' ? env_server : "127.0.0.1:50051");
  double seconds = 30;
  if (args.Has("timeout") && (!absl::SimpleAtod(args.Get("timeout"), &seconds) || seconds <= 0)) {
    return InvalidArgumentError(
        absl::StrCat("--timeout: '", args.Get("timeout"), "' is not a positive number of seconds"));
  }
  connection->timeout_ = absl::Seconds(seconds);
  if (args.Has("token-file")) {
    StatusOr<std::string> token = ReadWholeFile(args.Get("token-file"), "token file");
    if (!token.ok()) return token.status();
    // The first non-empty line, as the server's token file holds one token per line.
    std::istringstream lines(*token);
    std::string line;
    while (std::getline(lines, line)) {
      const std::string trimmed(absl::StripAsciiWhitespace(line));
      if (!trimmed.empty()) {
        connection->token_ = trimmed;
        break;
      }
    }
    if (connection->token_.empty()) {
      return InvalidArgumentError(absl::StrCat("token file ", args.Get("token-file"), " is empty"));
    }
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (args.Has("tls-ca")) {
    StatusOr<std::string> roots = ReadWholeFile(args.Get("tls-ca"), "TLS root certificate");
    if (!roots.ok()) return roots.status();
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = *roots;
    credentials = grpc::SslCredentials(options);
  }
  grpc::ChannelArguments channel_args;
  channel_args.SetMaxReceiveMessageSize(64 << 20);
  channel_args.SetMaxSendMessageSize(64 << 20);
  connection->channel_ = grpc::CreateCustomChannel(connection->server_, credentials, channel_args);
  connection->training_ = v1::TrainingService::NewStub(connection->channel_);
  connection->inference_ = v1::InferenceService::NewStub(connection->channel_);
  return connection;
}

void Connection::Prepare(grpc::ClientContext* context, bool stream) const {
  if (!token_.empty()) context->AddMetadata("authorization", "Bearer " + token_);
  if (!stream) context->set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
}

}  // namespace selene::client
