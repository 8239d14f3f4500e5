#include "client/args.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace selene::client {
namespace {

// Flags that take a value for any command; whether an unknown command flag takes a value is
// unknowable before the command is known, so these lists name every value flag of every command.
const std::set<std::string>& AllValueFlags() {
  static const auto* flags =
      new std::set<std::string>{"server", "token-file", "tls-ca", "timeout",   "set",   "priority",
                                "state",  "out",        "model",  "threshold", "top-k", "reason"};
  return *flags;
}

std::string Normalize(std::string name) {
  std::replace(name.begin(), name.end(), '_', '-');
  return name;
}

}  // namespace

std::string ParsedArgs::Get(const std::string& name, const std::string& fallback) const {
  const auto it = flags.find(name);
  return it == flags.end() || it->second.empty() ? fallback : it->second.back();
}

std::vector<std::string> ParsedArgs::GetAll(const std::string& name) const {
  const auto it = flags.find(name);
  return it == flags.end() ? std::vector<std::string>{} : it->second;
}

const std::set<std::string>& GlobalValueFlags() {
  static const auto* flags = new std::set<std::string>{"server", "token-file", "tls-ca", "timeout"};
  return *flags;
}

StatusOr<ParsedArgs> ParseArgs(int argc, char** argv) {
  ParsedArgs parsed;
  bool positional_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (positional_only || arg.size() < 2 || arg[0] != '-' || arg == "-") {
      if (parsed.command.empty()) {
        parsed.command = arg;
      } else {
        parsed.positional.push_back(arg);
      }
      continue;
    }
    if (arg == "--") {
      positional_only = true;
      continue;
    }
    std::string body = arg.substr(arg[1] == '-' ? 2 : 1);
    std::string value;
    bool has_value = false;
    if (const size_t eq = body.find('='); eq != std::string::npos) {
      value = body.substr(eq + 1);
      body = body.substr(0, eq);
      has_value = true;
    }
    const std::string name = Normalize(body);
    if (name == "h") {
      parsed.flags["help"].push_back("true");
      continue;
    }
    if (AllValueFlags().count(name) > 0) {
      if (!has_value) {
        if (i + 1 >= argc) return InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
        value = argv[++i];
      }
      parsed.flags[name].push_back(value);
    } else {
      parsed.flags[name].push_back(has_value ? value : "true");
    }
  }
  return parsed;
}

Status CheckCommandFlags(const ParsedArgs& args, const std::set<std::string>& value_flags,
                         const std::set<std::string>& bool_flags) {
  for (const auto& [name, values] : args.flags) {
    if (GlobalValueFlags().count(name) > 0 || value_flags.count(name) > 0 || name == "help") {
      continue;
    }
    if (bool_flags.count(name) > 0) {
      for (const std::string& value : values) {
        if (value != "true" && value != "false") {
          return InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
        }
      }
      continue;
    }
    return InvalidArgumentError(absl::StrCat("unknown flag --", name, " for '", args.command, "'"));
  }
  return OkStatus();
}

}  // namespace selene::client
