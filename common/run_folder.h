// The folder of one training run and the names of its files, in one place: selene-train's --out,
// a server job's <state_dir>/jobs/<id>. The trainer writes the checkpoints at the paths given
// here, the run's outputs and report write the rest, and the serving layer, the API and the CLI
// read them by these names.
//
//   best.pt, last.pt              checkpoints (best by the monitored metric; the latest, resumable)
//   spec.json                     the exact spec run
//   data_summary.json             counts, sizes, class balance, warnings of the data
//   class_names.txt               one class name per line, in output order (serving reads it)
//   history.csv, metrics.json     per-epoch history; best and final metrics
//   report.md, run_summary.json   the report (with its images) and the comparable summary
//
// Torch- and Abseil-free, so every floor can name a run's files.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace selene {

class RunFolder {
 public:
  static constexpr char kBestCheckpoint[] = "best.pt";
  static constexpr char kLastCheckpoint[] = "last.pt";
  static constexpr char kSpec[] = "spec.json";
  static constexpr char kDataSummary[] = "data_summary.json";
  static constexpr char kClassNames[] = "class_names.txt";
  static constexpr char kHistory[] = "history.csv";
  static constexpr char kMetrics[] = "metrics.json";
  static constexpr char kReport[] = "report.md";
  static constexpr char kRunSummary[] = "run_summary.json";

  explicit RunFolder(std::string path) : path_(std::move(path)) {}

  // The folder of a server job: <state_dir>/jobs/<job_id>.
  static RunFolder OfJob(const std::string& state_dir, const std::string& job_id);

  const std::string& path() const { return path_; }
  // `<path>/<name>`, for any file of the run.
  std::string File(std::string_view name) const;

  std::string best_checkpoint() const { return File(kBestCheckpoint); }
  std::string last_checkpoint() const { return File(kLastCheckpoint); }
  std::string spec() const { return File(kSpec); }
  std::string data_summary() const { return File(kDataSummary); }
  std::string class_names() const { return File(kClassNames); }
  std::string history() const { return File(kHistory); }
  std::string metrics() const { return File(kMetrics); }
  std::string report() const { return File(kReport); }
  std::string run_summary() const { return File(kRunSummary); }

  bool Has(std::string_view name) const;

  // Creates the folder (and its parents); the status names it on failure.
  Status Create() const;
  // Writes `<path>/<name>` whole and durably (common/durable_file.h).
  Status Write(std::string_view name, std::string_view contents) const;

  // The lines of class_names.txt without surrounding blanks and trailing empty lines; empty
  // when the file is absent or unreadable.
  std::vector<std::string> ReadClassNames() const;
  // A file a write left half done (".tmp-" in its name, or ".tmp" at its end): never a result.
  static bool IsTemporary(std::string_view name);

  // Removes temporary files a killed writer left ("<name>.tmp-<pid>-<n>", or an older build's
  // "<name>.tmp"): on a nearly full disk they alone could fail the run again. Only the run's
  // own writer may call it, when nothing else writes in the folder.
  void RemoveTemporaryFiles() const;

 private:
  std::string path_;
};

}  // namespace selene
