// Confines data set paths to a data root: requests name folders relative to it, and nothing a
// request names (absolute paths, "..", symlinks pointing elsewhere) may reach outside it.
#pragma once

#include <string>

#include "common/status.h"

namespace selene::data {

// The canonical path of `relative` under `root` (symlinks resolved). `root` "" means the current
// directory; `relative` "" or "." means the root itself. InvalidArgument, naming the path and the
// root, for an absolute path, a ".." component, or a path whose resolved target lies outside the
// root; NotFound naming it when the root or the path does not exist.
StatusOr<std::string> ResolveUnderRoot(const std::string& root, const std::string& relative);

// True when `path` is `folder` or lies below it; both must be canonical.
bool IsWithin(const std::string& folder, const std::string& path);

}  // namespace selene::data
