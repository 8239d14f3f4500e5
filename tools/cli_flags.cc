#include "tools/cli_flags.h"

#include <cstring>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace selene::tools {
namespace {

// "--name=value" -> ("name", "value", true); "-name" -> ("name", "", false). False when `arg`
// is not a flag ("-", "--", a positional argument).
bool SplitFlag(absl::string_view arg, absl::string_view* name, absl::string_view* value,
               bool* has_value) {
  if (arg.size() < 2 || arg[0] != '-' || arg == "--") return false;
  absl::ConsumePrefix(&arg, "-");
  absl::ConsumePrefix(&arg, "-");
  const size_t equals = arg.find('=');
  *has_value = equals != absl::string_view::npos;
  *name = arg.substr(0, equals);
  *value = *has_value ? arg.substr(equals + 1) : absl::string_view();
  return !name->empty();
}

// Abseil's built-in usage flags, which are not registered flags.
bool IsUsageFlag(absl::string_view name) {
  for (absl::string_view usage : {"help", "helpfull", "helpshort", "helppackage", "version",
                                  "only_check_args", "helpon", "helpmatch"}) {
    if (name == usage) return true;
  }
  return false;
}

}  // namespace

StatusOr<std::vector<std::string>> ExtractRepeatedFlag(absl::string_view name,
                                                       std::vector<char*>* args) {
  std::vector<std::string> values;
  std::vector<char*> kept;
  for (size_t i = 0; i < args->size(); ++i) {
    char* arg = (*args)[i];
    if (i == 0) {
      kept.push_back(arg);
      continue;
    }
    if (std::strcmp(arg, "--") == 0) {  // the rest is positional
      kept.insert(kept.end(), args->begin() + i, args->end());
      break;
    }
    absl::string_view flag, value;
    bool has_value = false;
    if (!SplitFlag(arg, &flag, &value, &has_value) || flag != name) {
      kept.push_back(arg);
      continue;
    }
    if (has_value) {
      values.emplace_back(value);
    } else if (i + 1 < args->size()) {
      values.emplace_back((*args)[++i]);
    } else {
      return InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
    }
  }
  *args = std::move(kept);
  return values;
}

Status CheckFlags(const std::vector<char*>& args) {
  for (size_t i = 1; i < args.size(); ++i) {
    const absl::string_view arg = args[i];
    if (arg == "--") {
      if (i + 1 < args.size()) {
        return InvalidArgumentError(absl::StrCat("unexpected argument \"", args[i + 1], "\""));
      }
      break;
    }
    absl::string_view name, value;
    bool has_value = false;
    if (!SplitFlag(arg, &name, &value, &has_value)) {
      return InvalidArgumentError(absl::StrCat("unexpected argument \"", arg, "\""));
    }
    if (IsUsageFlag(name)) continue;  // absl::ParseCommandLine handles these itself
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    std::string bool_value = "true";
    if (flag == nullptr && !has_value && absl::StartsWith(name, "no")) {
      // --noflag: absl's spelling of --flag=false for booleans.
      flag = absl::FindCommandLineFlag(name.substr(2));
      if (flag != nullptr && !flag->IsOfType<bool>()) flag = nullptr;
      bool_value = "false";
    }
    if (flag == nullptr) return InvalidArgumentError(absl::StrCat("unknown flag --", name));
    std::string text;
    if (has_value) {
      text = std::string(value);
    } else if (flag->IsOfType<bool>()) {
      text = bool_value;
    } else if (i + 1 < args.size()) {
      text = args[++i];
    } else {
      return InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
    }
    std::string error;
    if (!flag->ParseFrom(text, &error)) {
      return InvalidArgumentError(absl::StrCat("--", flag->Name(), ": ", error));
    }
  }
  return OkStatus();
}

}  // namespace selene::tools
