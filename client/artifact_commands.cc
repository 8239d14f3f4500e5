// artifacts and download: lists a job's files, and fetches them into OUT/NAME through OUT/NAME.part
// so an interrupted download resumes from the bytes it already has; every file is checked against
// the sha256 the server lists before it gets its final name.
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/commands.h"
#include "client/progress_bar.h"
#include "common/markdown_table.h"
#include "common/number_format.h"
#include "common/sha256.h"

namespace selene::client {
namespace {

namespace fs = std::filesystem;

constexpr int kResumes = 5;

grpc::Status ListArtifacts(const std::string& job_id, Connection& connection,
                           v1::ListArtifactsResponse* response) {
  v1::ListArtifactsRequest request;
  request.set_job_id(job_id);
  grpc::ClientContext context;
  connection.Prepare(&context);
  return connection.training().ListArtifacts(&context, request, response);
}

StatusOr<std::string> FileSha256(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return InternalError(absl::StrCat("cannot open ", path.string()));
  std::error_code error;
  const auto size = fs::file_size(path, error);
  StatusOr<std::string> digest = Sha256OfFile(fd, static_cast<int64_t>(size), path.string());
  ::close(fd);
  return digest;
}

// Fetches one artifact into `target`; returns an exit code, having printed the outcome.
int DownloadOne(const std::string& job_id, const v1::Artifact& artifact, const fs::path& target,
                Connection& connection) {
  std::error_code error;
  fs::create_directories(target.parent_path().empty() ? fs::path(".") : target.parent_path(),
                         error);
  if (error) {
    PrintError(
        absl::StrCat("cannot create ", target.parent_path().string(), ": ", error.message()));
    return kExitFailed;
  }
  if (fs::exists(target)) {
    StatusOr<std::string> digest = FileSha256(target);
    if (digest.ok() && *digest == artifact.sha256()) {
      std::cout << artifact.name() << ": " << target.string() << " (already there, sha256 ok)"
                << std::endl;
      return kExitOk;
    }
  }
  const fs::path part = target.string() + ".part";
  int64_t have = fs::exists(part) ? static_cast<int64_t>(fs::file_size(part, error)) : 0;
  if (error || have > artifact.size_bytes()) {
    // Larger than the file: not a prefix of it (the artifact changed); start over.
    fs::remove(part, error);
    have = 0;
  }
  if (have > 0) {
    std::cout << artifact.name() << ": resuming at " << FormatBytes(static_cast<double>(have))
              << std::endl;
  }
  ProgressBar bar;
  int failures = 0;
  while (true) {
    std::ofstream out(part, std::ios::binary | std::ios::app);
    if (!out) {
      PrintError(absl::StrCat("cannot write ", part.string()));
      return kExitFailed;
    }
    v1::DownloadArtifactRequest request;
    request.set_job_id(job_id);
    request.set_name(artifact.name());
    request.set_offset(have);
    grpc::ClientContext context;
    connection.Prepare(&context, /*stream=*/true);
    std::unique_ptr<grpc::ClientReader<v1::ArtifactChunk>> reader =
        connection.training().DownloadArtifact(&context, request);
    v1::ArtifactChunk chunk;
    while (reader->Read(&chunk)) {
      if (chunk.offset() != have) {
        context.TryCancel();
        break;
      }
      out.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
      have += static_cast<int64_t>(chunk.data().size());
      bar.Update(artifact.name(), static_cast<double>(have),
                 static_cast<double>(chunk.total_size()),
                 absl::StrCat(FormatBytes(static_cast<double>(have)), " / ",
                              FormatBytes(static_cast<double>(chunk.total_size()))));
    }
    out.close();
    const grpc::Status status = reader->Finish();
    bar.Finish();
    if (!out) {
      PrintError(absl::StrCat("cannot write ", part.string()));
      return kExitFailed;
    }
    if (status.ok()) break;
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE && ++failures <= kResumes) {
      std::cerr << "selene: " << artifact.name() << ": stream broke at " << have
                << " bytes; resuming" << std::endl;
      absl::SleepFor(absl::Seconds(1));
      continue;
    }
    return connection.Fail(status);
  }
  StatusOr<std::string> digest = FileSha256(part);
  if (!digest.ok()) {
    PrintError(std::string(digest.status().message()));
    return kExitFailed;
  }
  if (*digest != artifact.sha256()) {
    // A bad .part would poison every later resume: drop it.
    fs::remove(part, error);
    PrintError(absl::StrCat(artifact.name(), ": sha256 mismatch (got ", *digest, ", server lists ",
                            artifact.sha256(), "); removed the download"));
    return kExitFailed;
  }
  fs::rename(part, target, error);
  if (error) {
    PrintError(absl::StrCat("cannot rename ", part.string(), ": ", error.message()));
    return kExitFailed;
  }
  std::cout << artifact.name() << ": " << target.string() << " ("
            << FormatBytes(static_cast<double>(artifact.size_bytes())) << ", sha256 ok)"
            << std::endl;
  return kExitOk;
}

}  // namespace

int RunArtifacts(const ParsedArgs& args, Connection& connection) {
  if (args.positional.size() != 1) {
    PrintError("usage: selene artifacts JOB");
    return kExitUsage;
  }
  v1::ListArtifactsResponse response;
  const grpc::Status status = ListArtifacts(args.positional[0], connection, &response);
  if (!status.ok()) return connection.Fail(status);
  MarkdownTable table;
  table.AddColumn("name").AddColumn("bytes", MarkdownTable::Align::kRight).AddColumn("sha256");
  for (const v1::Artifact& artifact : response.artifacts()) {
    table.AddRow({artifact.name(), Grouped(artifact.size_bytes()), artifact.sha256()});
  }
  std::cout << table.Render();
  return kExitOk;
}

int RunDownload(const ParsedArgs& args, Connection& connection) {
  const bool all = args.Enabled("all");
  if (args.positional.empty() || (all == (args.positional.size() > 1))) {
    PrintError("usage: selene download JOB (NAME... | --all) [--out DIR]");
    return kExitUsage;
  }
  const std::string& job_id = args.positional[0];
  v1::ListArtifactsResponse response;
  const grpc::Status status = ListArtifacts(job_id, connection, &response);
  if (!status.ok()) return connection.Fail(status);
  std::map<std::string, v1::Artifact> by_name;
  for (const v1::Artifact& artifact : response.artifacts()) by_name[artifact.name()] = artifact;
  std::vector<v1::Artifact> wanted;
  if (all) {
    wanted.assign(response.artifacts().begin(), response.artifacts().end());
  } else {
    for (size_t i = 1; i < args.positional.size(); ++i) {
      const auto it = by_name.find(args.positional[i]);
      if (it == by_name.end()) {
        PrintError(absl::StrCat(job_id, " has no artifact '", args.positional[i],
                                "' (selene artifacts ", job_id, " lists them)"));
        return kExitNotFound;
      }
      wanted.push_back(it->second);
    }
  }
  const fs::path out_dir = args.Get("out", ".");
  for (const v1::Artifact& artifact : wanted) {
    if (const int code = DownloadOne(job_id, artifact, out_dir / artifact.name(), connection)) {
      return code;
    }
  }
  return kExitOk;
}

}  // namespace selene::client
