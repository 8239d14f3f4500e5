#include "common/cli_flags.h"

#include <cstring>
#include <map>
#include <set>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace selene {
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

constexpr size_t kHelpColumns = 100;
constexpr absl::string_view kHelpIndent = "      ";

// "  --name (default: value)" then the description, word-wrapped under it.
void AppendFlagHelp(const absl::CommandLineFlag& flag, std::string* out) {
  const std::string value = flag.DefaultValue();
  absl::StrAppend(out, "  --", flag.Name(), " (default: ", value.empty() ? "\"\"" : value, ")\n");
  std::string line;
  for (absl::string_view word : absl::StrSplit(flag.Help(), ' ', absl::SkipEmpty())) {
    if (!line.empty() && kHelpIndent.size() + line.size() + 1 + word.size() > kHelpColumns) {
      absl::StrAppend(out, kHelpIndent, line, "\n");
      line.clear();
    }
    absl::StrAppend(&line, line.empty() ? "" : " ", word);
  }
  if (!line.empty()) absl::StrAppend(out, kHelpIndent, line, "\n");
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

bool AsksForHelp(const std::vector<char*>& args) {
  for (size_t i = 1; i < args.size(); ++i) {
    const absl::string_view arg = args[i];
    if (arg == "--") break;
    if (arg == "-h") return true;
    absl::string_view name, value;
    bool has_value = false;
    if (SplitFlag(arg, &name, &value, &has_value) && !has_value &&
        (name == "help" || name == "helpshort")) {
      return true;
    }
  }
  return false;
}

std::string FlagsHelp(absl::string_view usage, const std::vector<FlagGroup>& groups,
                      absl::string_view main_file) {
  std::string out = absl::StrCat(usage, "\n");
  std::set<std::string> shown;
  for (const FlagGroup& group : groups) {
    std::string body;
    for (const std::string& name : group.flags) {
      const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
      if (flag == nullptr || !shown.insert(name).second) continue;
      AppendFlagHelp(*flag, &body);
    }
    if (!body.empty()) absl::StrAppend(&out, "\n", group.title, ":\n", body);
  }
  // A flag added to the main file without a group still shows.
  std::map<std::string, const absl::CommandLineFlag*> others;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (absl::EndsWith(flag->Filename(), main_file) && shown.count(std::string(name)) == 0) {
      others.emplace(std::string(name), flag);
    }
  }
  if (!others.empty()) {
    absl::StrAppend(&out, "\nOther flags:\n");
    for (const auto& [name, flag] : others) AppendFlagHelp(*flag, &out);
  }
  absl::StrAppend(&out, "\nTry --helpfull for every flag, the libraries' included.\n");
  return out;
}

}  // namespace selene
