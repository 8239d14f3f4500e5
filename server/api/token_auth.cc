#include "server/api/token_auth.h"

#include <openssl/crypto.h>

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/sha256.h"
#include "server/api/grpc_status.h"

namespace selene::api {
namespace {

constexpr char kAuthorizationKey[] = "authorization";
constexpr absl::string_view kBearer = "bearer ";

}  // namespace

StatusOr<std::unique_ptr<TokenAuth>> TokenAuth::LoadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return InvalidArgumentError(absl::StrCat("token file ", path, ": cannot be read"));
  std::stringstream text;
  text << file.rdbuf();
  if (file.bad()) return InvalidArgumentError(absl::StrCat("token file ", path, ": read failed"));
  std::vector<std::string> tokens;
  for (absl::string_view line : absl::StrSplit(text.str(), '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || absl::StartsWith(line, "#")) continue;
    tokens.emplace_back(line);
  }
  if (tokens.empty()) {
    return InvalidArgumentError(absl::StrCat(
        "token file ", path, ": no token in it (one per line; blank and # lines are ignored)"));
  }
  return FromTokens(tokens);
}

StatusOr<std::unique_ptr<TokenAuth>> TokenAuth::FromTokens(const std::vector<std::string>& tokens) {
  if (tokens.empty()) return InvalidArgumentError("bearer tokens: none given");
  std::vector<std::string> digests;
  for (const std::string& token : tokens) {
    if (token.empty()) return InvalidArgumentError("bearer tokens: an empty token");
    digests.push_back(Sha256Raw(token));
  }
  return std::unique_ptr<TokenAuth>(new TokenAuth(std::move(digests)));
}

Status TokenAuth::CheckHeader(const std::string* authorization) const {
  if (authorization == nullptr || !absl::StartsWithIgnoreCase(*authorization, kBearer)) {
    return absl::UnauthenticatedError("missing bearer token (authorization: Bearer ...)");
  }
  const absl::string_view token =
      absl::StripAsciiWhitespace(absl::string_view(*authorization).substr(kBearer.size()));
  const std::string digest = Sha256Raw(token);
  // Every digest is compared, so the time taken does not say which token (if any) matched.
  bool matched = false;
  for (const std::string& known : digests_) {
    matched |= CRYPTO_memcmp(known.data(), digest.data(), digest.size()) == 0;
  }
  if (token.empty() || !matched) return absl::UnauthenticatedError("invalid bearer token");
  return OkStatus();
}

Status TokenAuth::Authenticate(const grpc::CallbackServerContext& context) const {
  const auto& metadata = context.client_metadata();
  const auto found = metadata.find(kAuthorizationKey);
  if (found == metadata.end()) return CheckHeader(nullptr);
  const std::string value(found->second.data(), found->second.size());
  return CheckHeader(&value);
}

grpc::Status TokenAuth::Check(const grpc::CallbackServerContext& context) const {
  return ToGrpcStatus(Authenticate(context));
}

}  // namespace selene::api
