#include "common/durable_file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <utility>

namespace selene {
namespace {

std::string FolderOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Unique per process and call, so two writers of one target never share a temporary file.
std::string TemporaryName(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  return path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

// The rename is only durable once the folder's entry is on the disk.
Status SyncFolder(const std::string& path) {
  const std::string folder = FolderOf(path);
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return FileError(errno, "opening the folder of", path);
  const int synced = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  // Some file systems cannot fsync a folder (EINVAL); the data itself is already synced.
  if (synced != 0 && error != EINVAL) return FileError(error, "syncing the folder of", path);
  return OkStatus();
}

}  // namespace

Status FileError(int error_number, std::string_view doing, const std::string& path) {
  std::string what(doing);
  what += " " + path;
  switch (error_number) {
    case ENOSPC:
      return ResourceExhaustedError("disk full " + what);
    case EDQUOT:
      return ResourceExhaustedError("disk quota exceeded " + what);
    case EFBIG:
      return ResourceExhaustedError("file size limit exceeded " + what);
    case EIO:
      return InternalError("I/O error " + what);
    default:
      return InternalError("failed " + what + ": " + std::strerror(error_number));
  }
}

StatusOr<DurableFileWriter> DurableFileWriter::Open(const std::string& path) {
  std::string temporary = TemporaryName(path);
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return FileError(errno, "writing", path);
  return DurableFileWriter(path, std::move(temporary), fd);
}

DurableFileWriter::DurableFileWriter(std::string path, std::string temporary, int fd)
    : path_(std::move(path)), temporary_(std::move(temporary)), fd_(fd) {}

DurableFileWriter::DurableFileWriter(DurableFileWriter&& other) noexcept
    : path_(std::move(other.path_)),
      temporary_(std::move(other.temporary_)),
      fd_(std::exchange(other.fd_, -1)) {}

DurableFileWriter& DurableFileWriter::operator=(DurableFileWriter&& other) noexcept {
  if (this != &other) {
    Discard();
    path_ = std::move(other.path_);
    temporary_ = std::move(other.temporary_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

DurableFileWriter::~DurableFileWriter() { Discard(); }

void DurableFileWriter::Discard() {
  if (fd_ < 0) return;
  ::close(fd_);
  fd_ = -1;
  ::unlink(temporary_.c_str());
}

Status DurableFileWriter::Append(std::string_view bytes) {
  if (fd_ < 0) return FailedPreconditionError("writing " + path_ + ": the writer was closed");
  while (!bytes.empty()) {
    const ssize_t written = ::write(fd_, bytes.data(), bytes.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      const int error = errno;
      Discard();
      return FileError(error, "writing", path_);
    }
    bytes.remove_prefix(static_cast<size_t>(written));
  }
  return OkStatus();
}

Status DurableFileWriter::Commit() {
  if (fd_ < 0) return FailedPreconditionError("writing " + path_ + ": the writer was closed");
  // Delayed allocation and NFS report a full disk only here, at fsync or close.
  if (::fsync(fd_) != 0) {
    const int error = errno;
    Discard();
    return FileError(error, "writing", path_);
  }
  const int closed = ::close(fd_);
  const int close_error = errno;
  fd_ = -1;
  if (closed != 0) {
    ::unlink(temporary_.c_str());
    return FileError(close_error, "writing", path_);
  }
  if (::rename(temporary_.c_str(), path_.c_str()) != 0) {
    const int error = errno;
    ::unlink(temporary_.c_str());
    return FileError(error, "moving into place", path_);
  }
  return SyncFolder(path_);
}

Status WriteFileDurably(const std::string& path, std::string_view contents) {
  StatusOr<DurableFileWriter> writer = DurableFileWriter::Open(path);
  if (!writer.ok()) return writer.status();
  SELENE_RETURN_IF_ERROR(writer->Append(contents));
  return writer->Commit();
}

int64_t FreeBytesAt(const std::string& path) {
  struct statvfs info {};
  if (::statvfs(path.c_str(), &info) != 0) return -1;
  return static_cast<int64_t>(info.f_bavail) * static_cast<int64_t>(info.f_frsize);
}

}  // namespace selene
