#include "server/data/data_root.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace selene::data {

namespace fs = std::filesystem;

bool IsWithin(const std::string& folder, const std::string& path) {
  const fs::path base(folder);
  const fs::path target(path);
  auto b = base.begin();
  auto t = target.begin();
  for (; b != base.end(); ++b, ++t) {
    // A trailing separator shows up as an empty last component; it matches anything.
    if (b->empty()) continue;
    if (t == target.end() || *b != *t) return false;
  }
  return true;
}

namespace {

StatusOr<std::string> Resolve(const std::string& root, const std::string& relative) {
  const std::string root_name = root.empty() ? "." : root;
  const fs::path rel(relative);
  if (rel.is_absolute() || rel.has_root_name() || rel.has_root_directory()) {
    return InvalidArgumentError(absl::StrCat("data path \"", relative,
                                             "\" must be relative to the data root \"", root_name,
                                             "\", not absolute"));
  }
  for (const fs::path& part : rel) {
    if (part == "..") {
      return InvalidArgumentError(absl::StrCat("data path \"", relative,
                                               "\" must stay inside the data root \"", root_name,
                                               "\" (no '..')"));
    }
  }
  std::error_code error;
  const fs::path canonical_root = fs::canonical(fs::path(root_name), error);
  if (error) {
    return NotFoundError(
        absl::StrCat("data root \"", root_name, "\" not found: ", error.message()));
  }
  if (!fs::is_directory(canonical_root, error)) {
    return NotFoundError(absl::StrCat("data root \"", root_name, "\" is not a folder"));
  }
  const fs::path joined = canonical_root / rel;
  // Existence first, so a missing folder is NotFound rather than a resolution error; a dangling
  // symlink counts as missing.
  if (!fs::exists(joined, error)) {
    return NotFoundError(absl::StrCat("data path \"", relative,
                                      "\" not found under the data root \"", root_name,
                                      "\" (looked for ", joined.string(), ")"));
  }
  const fs::path resolved = fs::canonical(joined, error);
  if (error) {
    return NotFoundError(absl::StrCat("data path \"", relative, "\" under the data root \"",
                                      root_name, "\" cannot be resolved: ", error.message()));
  }
  if (!IsWithin(canonical_root.string(), resolved.string())) {
    return InvalidArgumentError(absl::StrCat("data path \"", relative, "\" resolves to ",
                                             resolved.string(), ", outside the data root \"",
                                             root_name, "\""));
  }
  return resolved.string();
}

}  // namespace

StatusOr<std::string> ResolveUnderRoot(const std::string& root, const std::string& relative) {
  try {
    return Resolve(root, relative);
  } catch (const std::exception& e) {
    return InternalError(
        absl::StrCat("resolving data path \"", relative, "\" under \"", root, "\": ", e.what()));
  }
}

}  // namespace selene::data
