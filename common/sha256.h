// SHA-256 over bytes and open files (OpenSSL's EVP digest), as lower-case hex: what
// ListArtifacts and DownloadArtifact report so clients can check a download, and what the token
// check compares so a token's length and content do not leak through timing.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "common/status.h"

struct evp_md_ctx_st;

namespace selene {

// Incremental: Update as bytes arrive, then Finish once.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(absl::string_view bytes);
  // The 32-byte digest; the object must not be used afterwards.
  std::string FinishRaw();
  std::string FinishHex();

 private:
  evp_md_ctx_st* context_;
};

std::string Sha256Hex(absl::string_view bytes);
std::string Sha256Raw(absl::string_view bytes);

// The digest of `size` bytes of the open file `fd` from offset 0 (pread: the file position is
// left alone). `name` is for messages only. DataLoss when the file is shorter than `size` (it
// changed while being read), Internal for a read error.
StatusOr<std::string> Sha256OfFile(int fd, int64_t size, const std::string& name);

}  // namespace selene
