#include "tests/testing/small_disk.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace selene::testing {

StatusOr<std::unique_ptr<SmallDisk>> SmallDisk::Mount(const std::string& dir, int64_t bytes) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) return FailedPreconditionError("cannot create " + dir + ": " + error.message());
  const std::string options = "size=" + std::to_string(bytes) + ",mode=0755";
  if (::mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) != 0) {
    return FailedPreconditionError("cannot mount a tmpfs on " + dir + " (" + std::strerror(errno) +
                                   "; mounting needs root)");
  }
  return std::unique_ptr<SmallDisk>(new SmallDisk(dir));
}

SmallDisk::~SmallDisk() { ::umount2(dir_.c_str(), MNT_DETACH); }

int64_t SmallDisk::FreeBytes() const {
  struct statvfs info {};
  if (::statvfs(dir_.c_str(), &info) != 0) return -1;
  return static_cast<int64_t>(info.f_bavail) * static_cast<int64_t>(info.f_frsize);
}

Status SmallDisk::FillLeaving(int64_t free_bytes) {
  const std::string path = dir_ + "/filler";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return InternalError("cannot open " + path + ": " + std::strerror(errno));
  const std::vector<char> page(4096, 'f');
  Status status;
  while (FreeBytes() > free_bytes) {
    const int64_t excess = FreeBytes() - free_bytes;
    const size_t size = static_cast<size_t>(std::min<int64_t>(excess, 4096));
    if (::write(fd, page.data(), size) < 0) {
      if (errno != ENOSPC) status = InternalError("writing " + path + ": " + std::strerror(errno));
      break;
    }
  }
  ::close(fd);
  return status;
}

void SmallDisk::Free() { ::unlink((dir_ + "/filler").c_str()); }

}  // namespace selene::testing
