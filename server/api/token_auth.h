// Bearer-token authentication for the Selene services: the server is given a token file (one
// token per line) and every TrainingService and InferenceService call must carry
// `authorization: Bearer <token>` with one of them. Health checking and reflection stay open so
// load balancers and tools work without a token. Without a token file there is no TokenAuth and
// every call is let in.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include "absl/strings/string_view.h"
#include "common/status.h"

namespace selene::api {

class TokenAuth {
 public:
  // Reads `path`: one token per line, surrounding whitespace stripped, blank lines and lines
  // starting with '#' ignored. InvalidArgument naming the path for a file that cannot be read or
  // holds no token.
  static StatusOr<std::unique_ptr<TokenAuth>> LoadFile(const std::string& path);
  // InvalidArgument when `tokens` is empty or holds an empty token.
  static StatusOr<std::unique_ptr<TokenAuth>> FromTokens(const std::vector<std::string>& tokens);

  // OK when the call's metadata carries a valid bearer token; UNAUTHENTICATED otherwise ("missing
  // bearer token (authorization: Bearer ...)" or "invalid bearer token").
  grpc::Status Check(const grpc::CallbackServerContext& context) const;
  // The same as a selene::Status (UNAUTHENTICATED), for callers that convert at their own edge.
  Status Authenticate(const grpc::CallbackServerContext& context) const;

  // The same check on the value of the authorization header (nullptr: no header).
  Status CheckHeader(const std::string* authorization) const;

  int token_count() const { return static_cast<int>(digests_.size()); }

 private:
  explicit TokenAuth(std::vector<std::string> digests) : digests_(std::move(digests)) {}

  // SHA-256 of each token: comparing fixed-size digests in constant time tells an attacker
  // neither a token's length nor how much of a guess matched.
  const std::vector<std::string> digests_;
};

}  // namespace selene::api
