// Writing files so that a crash, a full disk or an I/O error never leaves a torn or stray file:
// the bytes go to a temporary file next to the target, which is flushed to the disk (fsync),
// renamed over the target and made durable by an fsync of the folder. A failure removes the
// temporary file and returns a status that names the file and the cause ("disk full writing
// var/jobs/job-1/last.pt"), so one job's write failure fails that job and nothing else.
//
// Torch-free and Abseil-free: the engine-only build uses it for checkpoints.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace selene {

// Streams a file into place. Nothing is visible at `path` until Commit succeeds; destroying an
// uncommitted writer (an error, a cancel) removes the temporary file.
class DurableFileWriter {
 public:
  // Creates the temporary file `<path>.tmp-<pid>-<n>` in the target's folder (which must exist).
  static StatusOr<DurableFileWriter> Open(const std::string& path);

  DurableFileWriter(DurableFileWriter&& other) noexcept;
  DurableFileWriter& operator=(DurableFileWriter&& other) noexcept;
  DurableFileWriter(const DurableFileWriter&) = delete;
  DurableFileWriter& operator=(const DurableFileWriter&) = delete;
  ~DurableFileWriter();

  // Appends bytes. After a failure the writer is spent: the temporary file is already gone.
  Status Append(std::string_view bytes);
  // fsync, close, rename over the target, fsync of the folder.
  Status Commit();

  const std::string& path() const { return path_; }
  const std::string& temporary_path() const { return temporary_; }

 private:
  DurableFileWriter(std::string path, std::string temporary, int fd);
  // Closes and removes the temporary file (idempotent).
  void Discard();

  std::string path_;
  std::string temporary_;
  int fd_ = -1;
};

// The whole file at once: Open, Append, Commit.
Status WriteFileDurably(const std::string& path, std::string_view contents);

// The status for an errno that `doing` ("writing", "creating", ...) `path` failed with: a full
// disk or quota is ResourceExhausted ("disk full writing PATH"), everything else Internal with
// the system's words ("I/O error writing PATH: Input/output error").
Status FileError(int error_number, std::string_view doing, const std::string& path);

// Bytes free for an unprivileged writer in the file system that holds `path`; -1 when unknown.
int64_t FreeBytesAt(const std::string& path);

}  // namespace selene
