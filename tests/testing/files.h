// Files for tests: a fresh temporary folder that is removed with everything in it when the test
// ends (the one way tests make scratch folders), and whole-file reads.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace selene::testing {

// A new, empty folder <tmp>/<prefix>-XXXXXX (mkdtemp: unique even when tests run in parallel)
// that the caller removes (a fixture's TearDown, after it stops what writes there). Fails the
// running test and returns "" when it cannot be made.
std::string MakeTempDir(std::string_view prefix = "selene-test");

// MakeTempDir's folder, removed with its contents at destruction.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "selene-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // The folder's canonical path; "" when it could not be made.
  const std::string& path() const { return path_; }
  // path()/sub, as a string (paths are passed around as strings in the code under test).
  std::string operator/(std::string_view sub) const;

 private:
  std::string path_;
};

// The whole content of `path` (bytes as they are); "" when it cannot be read.
std::string ReadFile(const std::filesystem::path& path);

}  // namespace selene::testing
