#include "common/run_folder.h"

#include <filesystem>
#include <fstream>
#include <system_error>

#include "common/durable_file.h"

namespace selene {
namespace {

namespace fs = std::filesystem;

bool EndsWith(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

std::string_view TrimBlanks(std::string_view text) {
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const size_t last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

}  // namespace

RunFolder RunFolder::OfJob(const std::string& state_dir, const std::string& job_id) {
  return RunFolder((fs::path(state_dir) / "jobs" / job_id).string());
}

std::string RunFolder::File(std::string_view name) const {
  return (fs::path(path_) / std::string(name)).string();
}

bool RunFolder::Has(std::string_view name) const {
  std::error_code error;
  return fs::exists(File(name), error);
}

Status RunFolder::Create() const {
  std::error_code error;
  fs::create_directories(path_, error);
  if (error) return FileError(error.value(), "creating", path_);
  return OkStatus();
}

Status RunFolder::Write(std::string_view name, std::string_view contents) const {
  return WriteFileDurably(File(name), contents);
}

std::vector<std::string> RunFolder::ReadClassNames() const {
  std::vector<std::string> names;
  std::ifstream in(class_names());
  if (!in) return names;
  std::string line;
  while (std::getline(in, line)) names.emplace_back(TrimBlanks(line));
  while (!names.empty() && names.back().empty()) names.pop_back();
  return names;
}

bool RunFolder::IsTemporary(std::string_view name) {
  return name.find(".tmp-") != std::string_view::npos || EndsWith(name, ".tmp");
}

void RunFolder::RemoveTemporaryFiles() const {
  std::error_code error;
  for (fs::directory_iterator it(path_, error), end; !error && it != end; it.increment(error)) {
    const std::string name = it->path().filename().string();
    if (IsTemporary(name)) {
      std::error_code ignored;
      fs::remove(it->path(), ignored);
    }
  }
}

}  // namespace selene
