// Lists the image files of a data set folder in a stable order, with the size and modification
// time that key the decoded-image cache, keeping every file inside the data root.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace selene::data {

struct FileEntry {
  std::string name;  // file name, e.g. "render0001.png"
  std::string path;  // full path
  int64_t size = 0;
  int64_t mtime_ns = 0;
};

// True for the image formats the readers decode (by extension, any case): png, jpg, jpeg, bmp,
// tif, tiff, webp, ppm, pgm, pbm.
bool IsImageFileName(const std::string& name);

// The name without its last extension: "0001TP_007680.png" -> "0001TP_007680".
std::string FileStem(const std::string& name);

// `path` relative to `base` when below it, else `path` unchanged (for messages and cache keys).
std::string RelativePath(const std::string& path, const std::string& base);

// True when `path` is a folder (following symlinks).
bool IsFolder(const std::string& path);

// Image files directly in `folder`, sorted by name; hidden files and other files are skipped.
// `data_root` is canonical: InvalidArgument when `folder` itself resolves outside it; a file
// that is a symlink resolving outside it is left out and named in `problems`. NotFound when the
// folder is missing.
StatusOr<std::vector<FileEntry>> ListImageFiles(const std::string& folder,
                                                const std::string& data_root,
                                                std::vector<std::string>* problems);

// Size and modification time of one file (for cache keys of side files such as wnids.txt);
// size -1 when it is missing.
FileEntry StatFile(const std::string& path);

}  // namespace selene::data
