#include "server/data/file_listing.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "server/data/data_root.h"

namespace selene::data {

namespace fs = std::filesystem;

namespace {

int64_t MtimeNs(const fs::path& path, std::error_code& error) {
  const auto time = fs::last_write_time(path, error);
  if (error) return 0;
  return std::chrono::duration_cast<std::chrono::nanoseconds>(time.time_since_epoch()).count();
}

}  // namespace

bool IsImageFileName(const std::string& name) {
  const size_t dot = name.rfind('.');
  if (dot == std::string::npos || dot == 0) return false;
  std::string ext = name.substr(dot + 1);
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const char* const kExtensions[] = {"png",  "jpg",  "jpeg", "bmp", "tif",
                                            "tiff", "webp", "ppm",  "pgm", "pbm"};
  for (const char* known : kExtensions) {
    if (ext == known) return true;
  }
  return false;
}

std::string FileStem(const std::string& name) {
  const size_t dot = name.rfind('.');
  return dot == std::string::npos || dot == 0 ? name : name.substr(0, dot);
}

std::string RelativePath(const std::string& path, const std::string& base) {
  if (base.empty() || path.size() <= base.size() || path.compare(0, base.size(), base) != 0) {
    return path;
  }
  if (base.back() == '/') return path.substr(base.size());
  return path[base.size()] == '/' ? path.substr(base.size() + 1) : path;
}

bool IsFolder(const std::string& path) {
  std::error_code error;
  return fs::is_directory(path, error);
}

StatusOr<std::vector<FileEntry>> ListImageFiles(const std::string& folder,
                                                const std::string& data_root,
                                                std::vector<std::string>* problems) {
  std::error_code error;
  if (!fs::is_directory(folder, error)) {
    return NotFoundError(absl::StrCat("folder ", folder, " not found"));
  }
  const fs::path canonical = fs::canonical(folder, error);
  if (error || !IsWithin(data_root, canonical.string())) {
    return InvalidArgumentError(absl::StrCat("folder ", folder, " resolves to ", canonical.string(),
                                             ", outside the data root ", data_root));
  }
  std::vector<FileEntry> files;
  fs::directory_iterator it(folder, error);
  if (error) {
    return NotFoundError(absl::StrCat("cannot list folder ", folder, ": ", error.message()));
  }
  for (; it != fs::directory_iterator(); it.increment(error)) {
    if (error) break;
    const fs::directory_entry& entry = *it;
    const std::string name = entry.path().filename().string();
    if (name.empty() || name[0] == '.' || !IsImageFileName(name)) continue;
    std::error_code entry_error;
    if (entry.is_symlink(entry_error)) {
      const fs::path target = fs::canonical(entry.path(), entry_error);
      if (entry_error) {
        if (problems)
          problems->push_back(absl::StrCat(entry.path().string(), ": dangling symlink"));
        continue;
      }
      if (!IsWithin(data_root, target.string())) {
        if (problems) {
          problems->push_back(absl::StrCat(entry.path().string(), ": symlink to ", target.string(),
                                           ", outside the data root ", data_root));
        }
        continue;
      }
    }
    if (!entry.is_regular_file(entry_error)) continue;
    FileEntry file;
    file.name = name;
    file.path = entry.path().string();
    file.size = static_cast<int64_t>(entry.file_size(entry_error));
    if (entry_error) file.size = -1;
    file.mtime_ns = MtimeNs(entry.path(), entry_error);
    files.push_back(std::move(file));
  }
  if (error) {
    return NotFoundError(absl::StrCat("cannot list folder ", folder, ": ", error.message()));
  }
  std::sort(files.begin(), files.end(),
            [](const FileEntry& a, const FileEntry& b) { return a.name < b.name; });
  return files;
}

FileEntry StatFile(const std::string& path) {
  FileEntry file;
  file.path = path;
  file.name = fs::path(path).filename().string();
  std::error_code error;
  file.size = static_cast<int64_t>(fs::file_size(path, error));
  if (error) {
    file.size = -1;
    return file;
  }
  file.mtime_ns = MtimeNs(path, error);
  return file;
}

}  // namespace selene::data
