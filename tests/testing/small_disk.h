// A real, small file system for tests of full-disk handling: a tmpfs of a given size mounted on a
// test folder (needs root, as CI runs; elsewhere Mount says why it cannot and the test skips),
// and a filler file that leaves only so many bytes free. Writes then fail in the kernel with
// ENOSPC exactly as on a full disk, without injecting anything into the code under test.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"

namespace selene::testing {

class SmallDisk {
 public:
  // Mounts a tmpfs of `bytes` on `dir` (created if missing). FailedPrecondition with the reason
  // when this process may not mount (not root, no CAP_SYS_ADMIN).
  static StatusOr<std::unique_ptr<SmallDisk>> Mount(const std::string& dir, int64_t bytes);

  // Unmounts (lazily, so open files do not stop it).
  ~SmallDisk();
  SmallDisk(const SmallDisk&) = delete;
  SmallDisk& operator=(const SmallDisk&) = delete;

  const std::string& dir() const { return dir_; }
  int64_t FreeBytes() const;

  // Grows the filler file (dir/filler) until at most `free_bytes` are left; 0 fills the disk.
  Status FillLeaving(int64_t free_bytes);
  // Removes the filler: the space comes back.
  void Free();

 private:
  explicit SmallDisk(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

}  // namespace selene::testing
