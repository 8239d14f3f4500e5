// Command-line helpers the Selene binaries share on top of Abseil flags: a flag that may be
// repeated (`--set a=1 --set b=2`, which absl flags do not accumulate), a check that turns
// usage errors into a status, so a tool can exit 2 where absl::ParseCommandLine would exit 1, and
// a --help of the binary's own flags. Abseil's --help lists only flags defined in a file named
// after the binary (selene-server.cc, selene-server_main.cc), so for a main.cc it prints "No
// flags matched.", and it exits 1 even when asked.
#pragma once

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/status.h"

namespace selene {

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

// Whether `args` asks for the binary's own help: --help or --helpshort (either dash count), or
// -h. The other usage flags (--helpfull, --help=SUBSTRING, ...) are left to Abseil.
bool AsksForHelp(const std::vector<char*>& args);

// Flags shown together under a title in FlagsHelp, in the order given.
struct FlagGroup {
  std::string title;
  std::vector<std::string> flags;
};

// The text of --help: `usage`, then each group's flags, each with its default and description
// (wrapped to 100 columns); then, under "Other flags", those defined in a file whose path ends
// with `main_file` that no group names, by name. Names in a group that are no flag are skipped.
std::string FlagsHelp(absl::string_view usage, const std::vector<FlagGroup>& groups,
                      absl::string_view main_file);

}  // namespace selene
