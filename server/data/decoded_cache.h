// Persists decoded data sets on disk so later runs skip decoding. One file per data set identity
// (kind, folder, task, storage size, classes); inside, the full key (that identity plus every
// file's name, size and modification time) and a checksum, so a stale, foreign or damaged file
// is detected and ignored, never trusted. Files are written to a temporary name and renamed.
#pragma once

#include <string>

#include "common/status.h"
#include "server/data/dataset_options.h"
#include "server/data/dataset_scan.h"
#include "server/data/decoded_set.h"

namespace selene::data {

struct CacheKey {
  std::string identity;  // what the cache file is for; names the file
  std::string content;   // identity plus the file list; must match exactly
};

CacheKey MakeCacheKey(const DatasetScan& scan, const DatasetOptions& options);

// "<cache_dir>/<kind>-<16 hex digits of the identity's hash>.selene-cache".
std::string CacheFilePath(const std::string& cache_dir, const DatasetOptions& options,
                          const CacheKey& key);

// NotFound when there is no file; DataLoss naming the file and what is wrong when it is damaged,
// truncated, of another format version, or holds a different key.
StatusOr<DecodedSet> LoadDecodedCache(const std::string& path, const CacheKey& key);

// Creates the folder when needed; writes atomically (temporary file, then rename).
Status SaveDecodedCache(const std::string& path, const CacheKey& key, const DecodedSet& set);

}  // namespace selene::data
