#include "server/api/artifact_index.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/run_folder.h"
#include "common/sha256.h"
#include "common/text_limits.h"

namespace selene::api {
namespace {

int64_t ModifiedNanoseconds(const struct stat& info) {
  return int64_t{info.st_mtim.tv_sec} * 1000000000 + info.st_mtim.tv_nsec;
}

// Closes the descriptor unless released.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

}  // namespace

OpenArtifact::~OpenArtifact() { ::close(fd_); }

StatusOr<std::string> OpenArtifact::Read(int64_t offset, int64_t max_bytes) const {
  const int64_t want = std::max<int64_t>(0, std::min(max_bytes, size_ - offset));
  std::string data(static_cast<size_t>(want), '\0');
  int64_t done = 0;
  while (done < want) {
    const ssize_t got =
        ::pread(fd_, data.data() + done, static_cast<size_t>(want - done), offset + done);
    if (got < 0) {
      if (errno == EINTR) continue;
      return InternalError(absl::StrCat("artifact ", name_, ": read failed at byte ", offset + done,
                                        ": ", std::strerror(errno)));
    }
    if (got == 0) {
      return absl::DataLossError(absl::StrCat("artifact ", name_, " shrank below ", size_,
                                              " bytes while being read; download it again"));
    }
    done += got;
  }
  return data;
}

bool ArtifactIndex::IsArtifactName(const std::string& name) {
  if (name.empty() || name[0] == '.') return false;
  if (name.find('/') != std::string::npos || name.find('\0') != std::string::npos) return false;
  // Checkpoints are written to "<name>.tmp" and renamed into place.
  if (absl::EndsWith(name, ".tmp") || absl::EndsWith(name, "~")) return false;
  return true;
}

StatusOr<std::vector<v1::Artifact>> ArtifactIndex::List(const std::string& job_id) {
  const std::string folder = RunFolder::OfJob(state_dir_, job_id).path();
  std::vector<v1::Artifact> artifacts;
  DIR* dir = ::opendir(folder.c_str());
  if (dir == nullptr) {
    if (errno == ENOENT) return artifacts;
    return InternalError(absl::StrCat("job ", ForMessage(job_id), ": cannot list its folder ",
                                      folder, ": ", std::strerror(errno)));
  }
  std::vector<std::string> names;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (IsArtifactName(name)) names.push_back(name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    StatusOr<std::unique_ptr<OpenArtifact>> opened = Open(job_id, name);
    // Gone (or replaced by a folder) since the listing: not an artifact any more.
    if (opened.status().code() == absl::StatusCode::kNotFound) continue;
    if (!opened.ok()) return opened.status();
    v1::Artifact artifact;
    artifact.set_name(name);
    artifact.set_size_bytes((*opened)->size());
    artifact.set_sha256((*opened)->sha256());
    artifacts.push_back(std::move(artifact));
  }
  return artifacts;
}

StatusOr<std::unique_ptr<OpenArtifact>> ArtifactIndex::Open(const std::string& job_id,
                                                            const std::string& name) {
  if (name.empty())
    return InvalidArgumentError(
        absl::StrCat("job ", ForMessage(job_id), ": artifact name is empty"));
  if (name.find('/') != std::string::npos || name == "." || name == ".." ||
      name.find('\0') != std::string::npos) {
    return InvalidArgumentError(absl::StrCat("artifact name \"", ForMessage(name),
                                             "\" must be a file name in the job's folder (no '/' "
                                             "or '..'), as ListArtifacts gives it"));
  }
  const auto not_found = [&] {
    return NotFoundError(
        absl::StrCat("job ", ForMessage(job_id), " has no artifact \"", ForMessage(name), "\""));
  };
  if (!IsArtifactName(name)) return not_found();
  const std::string path = RunFolder::OfJob(state_dir_, job_id).File(name);
  // O_NOFOLLOW: a symlink in a job folder is not the server's to follow.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    // ENAMETOOLONG: no file in the folder has a name that long (a client can send any name).
    if (errno == ENOENT || errno == ELOOP || errno == ENOTDIR || errno == ENAMETOOLONG) {
      return not_found();
    }
    return InternalError(absl::StrCat("job ", ForMessage(job_id), ": cannot open ",
                                      ForMessage(name), ": ", std::strerror(errno)));
  }
  FdCloser closer(fd);
  struct stat info;
  if (::fstat(fd, &info) != 0) {
    return InternalError(absl::StrCat("job ", ForMessage(job_id), ": cannot stat ",
                                      ForMessage(name), ": ", std::strerror(errno)));
  }
  if (!S_ISREG(info.st_mode)) return not_found();
  const int64_t size = info.st_size;
  CachedDigest key;
  key.inode = static_cast<uint64_t>(info.st_ino);
  key.size = size;
  key.mtime_ns = ModifiedNanoseconds(info);
  SELENE_ASSIGN_OR_RETURN(std::string sha256, Digest(path, fd, key, name));
  return std::make_unique<OpenArtifact>(closer.release(), name, size, std::move(sha256));
}

StatusOr<std::string> ArtifactIndex::Digest(const std::string& path, int fd,
                                            const CachedDigest& key, const std::string& name) {
  {
    absl::MutexLock lock(&mu_);
    const auto found = digests_.find(path);
    if (found != digests_.end() && found->second.inode == key.inode &&
        found->second.size == key.size && found->second.mtime_ns == key.mtime_ns) {
      return found->second.sha256;
    }
  }
  // Hashed outside the lock: a large checkpoint must not hold up other listings.
  SELENE_ASSIGN_OR_RETURN(std::string sha256, Sha256OfFile(fd, key.size, name));
  CachedDigest entry = key;
  entry.sha256 = sha256;
  absl::MutexLock lock(&mu_);
  digests_[path] = std::move(entry);
  return sha256;
}

}  // namespace selene::api
