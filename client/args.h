// Command-line arguments of `selene`: global flags (--server, --token-file, ...) anywhere on the
// line, then one command with its own flags and positional arguments. Hand-parsed because absl
// flags are process-global and each command has its own set; names may use '-' or '_'.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"

namespace selene::client {

struct ParsedArgs {
  std::string command;
  std::vector<std::string> positional;
  // Flag name (hyphenated, without "--") -> values in order; boolean flags get "true".
  std::map<std::string, std::vector<std::string>> flags;

  bool Has(const std::string& name) const { return flags.count(name) > 0; }
  // A boolean flag given and not set to false (`--json`, `--json=true`; not `--json=false`).
  bool Enabled(const std::string& name) const { return Has(name) && Get(name) != "false"; }
  // The last value given, or `fallback`.
  std::string Get(const std::string& name, const std::string& fallback = "") const;
  std::vector<std::string> GetAll(const std::string& name) const;
};

// Flags every command takes, with a value.
const std::set<std::string>& GlobalValueFlags();

// Flags that take a value (`--name V` or `--name=V`) are known by name for every command; any
// other flag is boolean (`--name`, or `--name=true|false`). The first non-flag argument is the
// command; everything after "--" is positional. A value flag without its value is
// InvalidArgument; unknown flags are left for CheckCommandFlags.
StatusOr<ParsedArgs> ParseArgs(int argc, char** argv);

// Checks the command's flags against what it accepts (globals always allowed).
Status CheckCommandFlags(const ParsedArgs& args, const std::set<std::string>& value_flags,
                         const std::set<std::string>& bool_flags);

}  // namespace selene::client
