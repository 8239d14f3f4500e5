#include "server/jobs/artifact_records.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"

namespace selene::jobs {
namespace {

namespace fs = std::filesystem;

// Size and sha256 of the file at `path`, read through one descriptor so both describe the same
// file even if it is replaced (renamed over) meanwhile.
StatusOr<ArtifactRecord> Describe(const std::string& path, const std::string& name) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Status(errno == ENOENT ? StatusCode::kNotFound : StatusCode::kInternal,
                  absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  }
  const off_t size = ::lseek(fd, 0, SEEK_END);
  StatusOr<std::string> digest =
      size < 0 ? StatusOr<std::string>(InternalError(absl::StrCat(path, ": cannot size")))
               : Sha256OfFile(fd, size, path);
  ::close(fd);
  SELENE_RETURN_IF_ERROR(digest.status());
  return ArtifactRecord{name, static_cast<int64_t>(size), *std::move(digest)};
}

}  // namespace

StatusOr<std::vector<ArtifactRecord>> DescribeRunFiles(const RunFolder& folder) {
  std::vector<ArtifactRecord> records;
  std::error_code error;
  for (fs::directory_iterator it(folder.path(), error), end; !error && it != end;
       it.increment(error)) {
    const std::string name = it->path().filename().string();
    if (!it->is_regular_file() || RunFolder::IsTemporary(name)) continue;
    SELENE_ASSIGN_OR_RETURN(ArtifactRecord record, Describe(it->path().string(), name));
    records.push_back(std::move(record));
  }
  if (error) {
    return InternalError(absl::StrCat(folder.path(), ": cannot list: ", error.message()));
  }
  std::sort(records.begin(), records.end(),
            [](const ArtifactRecord& a, const ArtifactRecord& b) { return a.name < b.name; });
  return records;
}

Status VerifyArtifact(const std::string& path, const ArtifactRecord& recorded) {
  SELENE_ASSIGN_OR_RETURN(ArtifactRecord found, Describe(path, recorded.name));
  if (found.size_bytes == recorded.size_bytes && found.sha256 == recorded.sha256) {
    return OkStatus();
  }
  return absl::DataLossError(absl::StrCat(path, " does not match what its job recorded (",
                                          recorded.size_bytes, " bytes, sha256 ", recorded.sha256,
                                          "): it has ", found.size_bytes, " bytes, sha256 ",
                                          found.sha256, "; a partial copy, or changed since"));
}

Status VerifyRecordedArtifact(JobStore& store, const std::string& job_id, const RunFolder& folder,
                              const std::string& name) {
  SELENE_ASSIGN_OR_RETURN(std::vector<ArtifactRecord> records, store.Artifacts(job_id));
  for (const ArtifactRecord& record : records) {
    if (record.name == name) return VerifyArtifact(folder.File(name), record);
  }
  return OkStatus();
}

}  // namespace selene::jobs
