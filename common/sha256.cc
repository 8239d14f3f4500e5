#include "common/sha256.h"

#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace selene {

Sha256::Sha256() : context_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(context_, EVP_sha256(), nullptr);
}

Sha256::~Sha256() { EVP_MD_CTX_free(context_); }

void Sha256::Update(absl::string_view bytes) {
  EVP_DigestUpdate(context_, bytes.data(), bytes.size());
}

std::string Sha256::FinishRaw() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(context_, digest, &length);
  return std::string(reinterpret_cast<const char*>(digest), length);
}

std::string Sha256::FinishHex() { return absl::BytesToHexString(FinishRaw()); }

std::string Sha256Hex(absl::string_view bytes) {
  Sha256 hash;
  hash.Update(bytes);
  return hash.FinishHex();
}

std::string Sha256Raw(absl::string_view bytes) {
  Sha256 hash;
  hash.Update(bytes);
  return hash.FinishRaw();
}

StatusOr<std::string> Sha256OfFile(int fd, int64_t size, const std::string& name) {
  constexpr int64_t kBlock = int64_t{1} << 20;
  std::vector<char> buffer(static_cast<size_t>(std::min(kBlock, std::max<int64_t>(size, 1))));
  Sha256 hash;
  int64_t offset = 0;
  while (offset < size) {
    const size_t want = static_cast<size_t>(std::min<int64_t>(size - offset, buffer.size()));
    const ssize_t got = ::pread(fd, buffer.data(), want, offset);
    if (got < 0) {
      if (errno == EINTR) continue;
      return InternalError(
          absl::StrCat(name, ": read failed at byte ", offset, ": ", std::strerror(errno)));
    }
    if (got == 0) {
      return absl::DataLossError(absl::StrCat(name, " is ", offset, " bytes now, not ", size,
                                              ": it changed while being read"));
    }
    hash.Update(absl::string_view(buffer.data(), static_cast<size_t>(got)));
    offset += got;
  }
  return hash.FinishHex();
}

}  // namespace selene
