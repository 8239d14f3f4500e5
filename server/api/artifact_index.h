// A job's artifacts as the TrainingService shows them: the regular files directly in the job's
// folder (<state_dir>/jobs/<id>: checkpoints, history, metrics, report, plots), without
// subfolders, hidden files or the temporary files checkpoints are written through. SHA-256
// digests are cached by (path, inode, size, mtime), so listing a job again does not reread its
// checkpoints, while a rewritten file (last.pt every epoch) gets a fresh digest.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"
#include "selene/v1/training_service.pb.h"

namespace selene::api {

// One artifact opened for reading: the descriptor pins the file's content, so a checkpoint
// replaced (renamed over) while it downloads is still read whole, as it was when opened.
class OpenArtifact {
 public:
  OpenArtifact(int fd, std::string name, int64_t size, std::string sha256)
      : fd_(fd), name_(std::move(name)), size_(size), sha256_(std::move(sha256)) {}
  ~OpenArtifact();
  OpenArtifact(const OpenArtifact&) = delete;
  OpenArtifact& operator=(const OpenArtifact&) = delete;

  const std::string& name() const { return name_; }
  int64_t size() const { return size_; }
  const std::string& sha256() const { return sha256_; }

  // Up to `max_bytes` from `offset` (the rest of the file when shorter). DataLoss naming the
  // file when it turned out shorter than its size at opening.
  StatusOr<std::string> Read(int64_t offset, int64_t max_bytes) const;

 private:
  const int fd_;
  const std::string name_;
  const int64_t size_;
  const std::string sha256_;
};

// Thread-safe.
class ArtifactIndex {
 public:
  explicit ArtifactIndex(std::string state_dir) : state_dir_(std::move(state_dir)) {}

  // The artifacts of `job_id`'s folder, sorted by name; none when the folder does not exist yet
  // (a job that has not started). The caller checks that the job exists.
  StatusOr<std::vector<v1::Artifact>> List(const std::string& job_id) ABSL_LOCKS_EXCLUDED(mu_);

  // Opens one artifact with its size and digest. InvalidArgument for a name that is empty or is
  // not a plain file name ('/', "..", a leading '.'); NotFound naming the job and the name when
  // the folder holds no such artifact.
  StatusOr<std::unique_ptr<OpenArtifact>> Open(const std::string& job_id, const std::string& name)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Whether `name` is listed as an artifact at all (temporary and hidden files are not).
  static bool IsArtifactName(const std::string& name);

 private:
  struct CachedDigest {
    uint64_t inode = 0;
    int64_t size = 0;
    int64_t mtime_ns = 0;
    std::string sha256;
  };

  // The digest of the open file `fd`, from the cache when the path still has that inode, size
  // and modification time.
  StatusOr<std::string> Digest(const std::string& path, int fd, const CachedDigest& key,
                               const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);

  const std::string state_dir_;
  absl::Mutex mu_;
  std::map<std::string, CachedDigest> digests_ ABSL_GUARDED_BY(mu_);  // by path
};

}  // namespace selene::api
