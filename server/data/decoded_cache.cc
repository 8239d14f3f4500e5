#include "server/data/decoded_cache.h"

#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/durable_file.h"

namespace selene::data {
namespace {

namespace fs = std::filesystem;

constexpr char kMagic[8] = {'S', 'E', 'L', 'D', 'C', 'A', 'C', 'H'};
constexpr char kEndMagic[8] = {'S', 'E', 'L', 'D', 'C', 'E', 'N', 'D'};
// Bump when the decoding itself changes (mask rules, resizing), so old caches are not trusted.
constexpr uint32_t kVersion = 1;

enum TargetKind : int32_t { kLabels = 0, kBinaryMasks = 1, kIdMasks = 2 };

uint64_t Fnv1a(const std::string& text) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

// Checksum over 8-byte words; chunk boundaries are the same on writing and reading (one chunk
// per field), so the value is reproducible without buffering the file.
class Checksum {
 public:
  void Add(const void* data, size_t size) {
    const auto* p = static_cast<const unsigned char*>(data);
    size_t i = 0;
    for (; i + 8 <= size; i += 8) {
      uint64_t word;
      std::memcpy(&word, p + i, 8);
      Mix(word);
    }
    uint64_t tail = 0;
    for (size_t k = 0; i < size; ++i, ++k) tail |= static_cast<uint64_t>(p[i]) << (8 * k);
    Mix(tail ^ (static_cast<uint64_t>(size) << 56));
  }
  uint64_t value() const { return h_; }

 private:
  void Mix(uint64_t word) {
    h_ = (h_ ^ word) * 0x9e3779b97f4a7c15ull;
    h_ ^= h_ >> 31;
  }
  uint64_t h_ = 0x243f6a8885a308d3ull;
};

// Appends to a durable file and checksums what it wrote; the first write error is kept and the
// rest of the writes are skipped.
class Writer {
 public:
  explicit Writer(DurableFileWriter* out) : out_(out) {}
  void Raw(const void* data, size_t size) {
    if (status_.ok()) {
      status_ = out_->Append(std::string_view(static_cast<const char*>(data), size));
    }
  }
  void Bytes(const void* data, size_t size) {
    checksum_.Add(data, size);
    Raw(data, size);
  }
  template <typename T>
  void Pod(T value) {
    Bytes(&value, sizeof(value));
  }
  void String(const std::string& text) {
    Pod<uint64_t>(text.size());
    Bytes(text.data(), text.size());
  }
  void Strings(const std::vector<std::string>& items) {
    Pod<uint64_t>(items.size());
    for (const std::string& item : items) String(item);
  }
  uint64_t checksum() const { return checksum_.value(); }
  const Status& status() const { return status_; }

 private:
  DurableFileWriter* out_;
  Checksum checksum_;
  Status status_;
};

// Reads with bounds checks against the file size, so a damaged length never allocates wildly.
class Reader {
 public:
  Reader(std::ifstream* in, uint64_t size) : in_(in), remaining_(size) {}
  bool Bytes(void* data, uint64_t size) {
    if (size > remaining_) return false;
    if (!in_->read(static_cast<char*>(data), static_cast<std::streamsize>(size))) return false;
    remaining_ -= size;
    checksum_.Add(data, size);
    return true;
  }
  template <typename T>
  bool Pod(T* value) {
    return Bytes(value, sizeof(T));
  }
  bool String(std::string* text) {
    uint64_t size = 0;
    if (!Pod(&size) || size > remaining_) return false;
    text->resize(size);
    return Bytes(text->data(), size);
  }
  bool Strings(std::vector<std::string>* items) {
    uint64_t count = 0;
    // Every string takes at least its 8-byte length.
    if (!Pod(&count) || count > remaining_ / 8) return false;
    items->resize(count);
    for (std::string& item : *items) {
      if (!String(&item)) return false;
    }
    return true;
  }
  uint64_t remaining() const { return remaining_; }
  uint64_t checksum() const { return checksum_.value(); }

 private:
  std::ifstream* in_;
  uint64_t remaining_;
  Checksum checksum_;
};

void AddFile(std::string* key, const char* role, const FileEntry& file, const std::string& folder) {
  absl::StrAppend(key, role, " ", RelativePath(file.path, folder), " ", file.size, " ",
                  file.mtime_ns, "\n");
}

std::string MaskModeName(MaskMode mode) {
  switch (mode) {
    case MaskMode::kNone:
      return "none";
    case MaskMode::kBinaryAuto:
      return "binary_auto";
    case MaskMode::kNonzero:
      return "nonzero";
    case MaskMode::kIds:
      return "ids";
    case MaskMode::kPalette:
      return "palette";
  }
  return "unknown";
}

}  // namespace

CacheKey MakeCacheKey(const DatasetScan& scan, const DatasetOptions& options) {
  CacheKey key;
  absl::StrAppend(&key.identity, "selene decoded cache v", kVersion, "\nkind ",
                  DatasetKindName(options.kind), "\ntask ", train::TaskName(options.task),
                  "\nfolder ", scan.folder, "\nstorage ", scan.storage_size, "\nclasses ",
                  scan.num_classes, "\n");
  for (const std::string& name : scan.class_names)
    absl::StrAppend(&key.identity, "class ", name, "\n");
  key.content = key.identity;
  absl::StrAppend(&key.content, "ignore ", options.ignore_index, "\nmasks ",
                  MaskModeName(scan.mask_mode), "\n");
  for (const auto& c : scan.palette.colours) {
    absl::StrAppend(&key.content, "colour ", c[0], " ", c[1], " ", c[2], "\n");
  }
  for (const FileEntry& file : scan.side_files) AddFile(&key.content, "side", file, scan.folder);
  for (const ScanItem& item : scan.items) {
    absl::StrAppend(&key.content, "item ", item.label, " ", item.in_val ? 1 : 0, "\n");
    AddFile(&key.content, "image", item.image, scan.folder);
    if (!item.mask.path.empty()) AddFile(&key.content, "mask", item.mask, scan.folder);
  }
  return key;
}

std::string CacheFilePath(const std::string& cache_dir, const DatasetOptions& options,
                          const CacheKey& key) {
  return absl::StrFormat("%s/%s-%016x.selene-cache", cache_dir, DatasetKindName(options.kind),
                         Fnv1a(key.identity));
}

namespace {

StatusOr<DecodedSet> LoadCache(const std::string& path, const CacheKey& key) {
  std::error_code error;
  const uint64_t file_size = fs::file_size(path, error);
  if (error) return NotFoundError(absl::StrCat("no cache file ", path));
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError(absl::StrCat("cannot open cache file ", path));
  auto damaged = [&path](const std::string& what) {
    return absl::DataLossError(absl::StrCat("cache file ", path, " ignored: ", what));
  };
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, kMagic, 8) != 0) {
    return damaged("not a Selene cache file");
  }
  Reader reader(&in, file_size - 8);
  uint32_t version = 0;
  if (!reader.Pod(&version)) return damaged("truncated header");
  if (version != kVersion) {
    return damaged(absl::StrCat("format version ", version, ", expected ", kVersion));
  }
  std::string stored_key;
  if (!reader.String(&stored_key)) return damaged("truncated key");
  if (stored_key != key.content) return damaged("made from other files or options (key differs)");

  int64_t n = -1, channels = -1, side = -1;
  int32_t kind = -1;
  if (!reader.Pod(&n) || !reader.Pod(&channels) || !reader.Pod(&side) || !reader.Pod(&kind)) {
    return damaged("truncated shape");
  }
  if (n < 0 || channels != 3 || side <= 0 || side > 65536 || kind < kLabels || kind > kIdMasks) {
    return damaged("impossible shape");
  }
  const uint64_t plane = static_cast<uint64_t>(side) * static_cast<uint64_t>(side);
  const uint64_t image_bytes = static_cast<uint64_t>(n) * 3 * plane;
  const uint64_t target_bytes = kind == kLabels        ? static_cast<uint64_t>(n) * 8
                                : kind == kBinaryMasks ? static_cast<uint64_t>(n) * plane
                                                       : static_cast<uint64_t>(n) * plane * 8;
  if (image_bytes / 3 / plane != static_cast<uint64_t>(n) ||
      image_bytes + target_bytes > reader.remaining()) {
    return damaged("shape larger than the file (truncated)");
  }
  DecodedSet set;
  set.images = torch::empty({n, 3, side, side}, torch::kUInt8);
  if (kind == kLabels) {
    set.targets = torch::empty({n}, torch::kInt64);
  } else {
    set.targets =
        torch::empty({n, side, side}, kind == kBinaryMasks ? torch::kUInt8 : torch::kInt64);
  }
  if (!reader.Bytes(set.images.data_ptr(), image_bytes) ||
      !reader.Bytes(set.targets.data_ptr(), target_bytes)) {
    return damaged("truncated tensor data");
  }
  uint64_t size_count = 0;
  if (!reader.Strings(&set.names) || set.names.size() != static_cast<size_t>(n)) {
    return damaged("bad item names");
  }
  set.in_val.resize(static_cast<size_t>(n));
  if (!reader.Bytes(set.in_val.data(), set.in_val.size()) || !reader.Strings(&set.unreadable) ||
      !reader.Strings(&set.warnings) || !reader.Pod(&size_count) ||
      size_count > reader.remaining() / 16) {
    return damaged("truncated findings");
  }
  for (uint64_t i = 0; i < size_count; ++i) {
    std::string size;
    int64_t count = 0;
    if (!reader.String(&size) || !reader.Pod(&count)) return damaged("truncated image sizes");
    set.image_sizes[size] = count;
  }
  if (!reader.Pod(&set.empty_masks) || !reader.Strings(&set.empty_mask_examples) ||
      !reader.Pod(&set.unmatched_colour_pixels)) {
    return damaged("truncated findings");
  }
  const uint64_t expected = reader.checksum();
  uint64_t checksum = 0;
  char end[8];
  if (!in.read(reinterpret_cast<char*>(&checksum), 8) || !in.read(end, 8)) {
    return damaged("truncated trailer");
  }
  if (checksum != expected) return damaged("checksum mismatch (damaged data)");
  if (std::memcmp(end, kEndMagic, 8) != 0 || reader.remaining() != 16) {
    return damaged("bad trailer");
  }
  return set;
}

Status SaveCache(const std::string& path, const CacheKey& key, const DecodedSet& set) {
  std::error_code error;
  const fs::path target(path);
  if (target.has_parent_path()) {
    fs::create_directories(target.parent_path(), error);
    if (error) {
      return absl::UnavailableError(absl::StrCat(
          "cannot create cache folder ", target.parent_path().string(), ": ", error.message()));
    }
  }
  const torch::Tensor images = set.images.contiguous();
  const torch::Tensor targets = set.targets.contiguous();
  const int32_t kind = targets.dim() == 1                       ? kLabels
                       : targets.scalar_type() == torch::kUInt8 ? kBinaryMasks
                                                                : kIdMasks;
  StatusOr<DurableFileWriter> file = DurableFileWriter::Open(path);
  if (!file.ok()) return file.status();
  Writer writer(&*file);
  writer.Raw(kMagic, 8);
  writer.Pod<uint32_t>(kVersion);
  writer.String(key.content);
  writer.Pod<int64_t>(images.size(0));
  writer.Pod<int64_t>(images.size(1));
  writer.Pod<int64_t>(images.size(2));
  writer.Pod<int32_t>(kind);
  writer.Bytes(images.data_ptr(), images.nbytes());
  writer.Bytes(targets.data_ptr(), targets.nbytes());
  writer.Strings(set.names);
  writer.Bytes(set.in_val.data(), set.in_val.size());
  writer.Strings(set.unreadable);
  writer.Strings(set.warnings);
  writer.Pod<uint64_t>(set.image_sizes.size());
  for (const auto& [size, count] : set.image_sizes) {
    writer.String(size);
    writer.Pod<int64_t>(count);
  }
  writer.Pod<int64_t>(set.empty_masks);
  writer.Strings(set.empty_mask_examples);
  writer.Pod<int64_t>(set.unmatched_colour_pixels);
  const uint64_t checksum = writer.checksum();
  writer.Raw(&checksum, 8);
  writer.Raw(kEndMagic, 8);
  SELENE_RETURN_IF_ERROR(writer.status());
  return file->Commit();
}

}  // namespace

// A cache is an optimisation: whatever goes wrong with it becomes a status, never an exception.
StatusOr<DecodedSet> LoadDecodedCache(const std::string& path, const CacheKey& key) {
  try {
    return LoadCache(path, key);
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("cache file ", path, " ignored: ", e.what()));
  }
}

Status SaveDecodedCache(const std::string& path, const CacheKey& key, const DecodedSet& set) {
  try {
    return SaveCache(path, key, set);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("writing cache file ", path, ": ", e.what()));
  }
}

}  // namespace selene::data
