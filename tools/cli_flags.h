// Command-line helpers the Selene binaries share on top of Abseil flags: a flag that may be
// repeated (`--set a=1 --set b=2`, which absl flags do not accumulate) and a check that turns
// usage errors into a status, so a tool can exit 2 where absl::ParseCommandLine would exit 1.
#pragma once

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/status.h"

namespace selene::tools {

// Removes every `--NAME VALUE`, `--NAME=VALUE` (or single-dash) occurrence from `args` (argv,
// program name first) and returns the values in order. Values are taken verbatim, commas and
// '=' included. Scanning stops at "--" (what follows is positional). A trailing `--NAME` with
// no value is InvalidArgument.
StatusOr<std::vector<std::string>> ExtractRepeatedFlag(absl::string_view name,
                                                       std::vector<char*>* args);

// Checks every flag in `args` is a defined absl flag and that its value parses, and that there
// are no positional arguments; InvalidArgument names the offending argument. It sets the flags
// it checks (absl::ParseCommandLine then sets them again to the same values).
Status CheckFlags(const std::vector<char*>& args);

}  // namespace selene::tools
