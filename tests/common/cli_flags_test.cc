// Tests common/cli_flags.h: the repeated --set flag, the usage check before absl parses, and the
// binary's own --help (by topic, described, wrapped; flags without a topic still listed).
#include "common/cli_flags.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/flags/flag.h"

ABSL_FLAG(int, cli_test_count, 0, "for the test");
ABSL_FLAG(bool, cli_test_switch, false, "for the test");
ABSL_FLAG(std::string, cli_test_name, "", "for the test");
ABSL_FLAG(int, cli_test_long, 7,
          "A flag whose description is long enough that it must be wrapped onto a second line "
          "to keep the help within one hundred columns, as a terminal shows it.");

namespace selene {
namespace {

using ::testing::ElementsAre;

// argv-like storage that outlives the char* views.
class Args {
 public:
  explicit Args(std::vector<std::string> args) : storage_(std::move(args)) {
    for (std::string& arg : storage_) pointers_.push_back(arg.data());
  }
  std::vector<char*>& get() { return pointers_; }
  std::vector<std::string> strings() const {
    return std::vector<std::string>(pointers_.begin(), pointers_.end());
  }

 private:
  std::vector<std::string> storage_;
  std::vector<char*> pointers_;
};

TEST(ExtractRepeatedFlagTest, TakesEveryFormInOrder) {
  Args args({"prog", "--set", "a.b=1", "--spec", "x.json", "--set=c=2,3", "-set", "d=e f",
             "--settle=9", "--", "--set", "z=1"});
  StatusOr<std::vector<std::string>> values = ExtractRepeatedFlag("set", &args.get());
  ASSERT_TRUE(values.ok()) << values.status();
  EXPECT_THAT(*values, ElementsAre("a.b=1", "c=2,3", "d=e f"));
  EXPECT_THAT(args.strings(),
              ElementsAre("prog", "--spec", "x.json", "--settle=9", "--", "--set", "z=1"));
}

TEST(ExtractRepeatedFlagTest, MissingValueIsAnError) {
  Args args({"prog", "--set"});
  StatusOr<std::vector<std::string>> values = ExtractRepeatedFlag("set", &args.get());
  ASSERT_FALSE(values.ok());
  EXPECT_EQ(values.status().message(), "--set needs a value");
}

TEST(CheckFlagsTest, AcceptsDefinedFlagsInAllForms) {
  Args args({"prog", "--cli_test_count", "3", "--cli_test_switch", "--cli_test_name=x",
             "--nocli_test_switch", "--helpfull"});
  EXPECT_TRUE(CheckFlags(args.get()).ok()) << CheckFlags(args.get());
  EXPECT_EQ(absl::GetFlag(FLAGS_cli_test_count), 3);
  EXPECT_FALSE(absl::GetFlag(FLAGS_cli_test_switch));
}

TEST(CheckFlagsTest, NamesUnknownFlagsBadValuesAndStrayArguments) {
  Args unknown({"prog", "--cli_test_cuont=3"});
  EXPECT_EQ(CheckFlags(unknown.get()).message(), "unknown flag --cli_test_cuont");
  Args bad({"prog", "--cli_test_count=many"});
  EXPECT_THAT(std::string(CheckFlags(bad.get()).message()),
              testing::StartsWith("--cli_test_count: "));
  Args stray({"prog", "spec.json"});
  EXPECT_EQ(CheckFlags(stray.get()).message(), "unexpected argument \"spec.json\"");
  Args missing({"prog", "--cli_test_name"});
  EXPECT_EQ(CheckFlags(missing.get()).message(), "--cli_test_name needs a value");
}

TEST(AsksForHelpTest, FindsTheHelpFlagsAndLeavesTheRestToAbseil) {
  for (const char* flag : {"--help", "-help", "--helpshort", "-h"}) {
    Args args({"prog", "--cli_test_count=3", flag});
    EXPECT_TRUE(AsksForHelp(args.get())) << flag;
  }
  for (const char* flag : {"--helpfull", "--help=cli_test", "--version", "--cli_test_name=help"}) {
    Args args({"prog", flag});
    EXPECT_FALSE(AsksForHelp(args.get())) << flag;
  }
  Args positional({"prog", "--", "--help"});
  EXPECT_FALSE(AsksForHelp(positional.get()));
}

TEST(FlagsHelpTest, ListsTheGroupsThenTheMainFilesOtherFlags) {
  const std::string help = FlagsHelp("Tests the flags.\n  prog [--cli_test_count N]",
                                     {{"Counting", {"cli_test_count", "no_such_flag"}},
                                      {"Naming", {"cli_test_name", "cli_test_long"}}},
                                     "tests/common/cli_flags_test.cc");
  EXPECT_EQ(help,
            "Tests the flags.\n"
            "  prog [--cli_test_count N]\n"
            "\n"
            "Counting:\n"
            "  --cli_test_count (default: 0)\n"
            "      for the test\n"
            "\n"
            "Naming:\n"
            "  --cli_test_name (default: \"\")\n"
            "      for the test\n"
            "  --cli_test_long (default: 7)\n"
            "      A flag whose description is long enough that it must be wrapped onto a second "
            "line to keep the\n"
            "      help within one hundred columns, as a terminal shows it.\n"
            "\n"
            "Other flags:\n"
            "  --cli_test_switch (default: false)\n"
            "      for the test\n"
            "\n"
            "Try --helpfull for every flag, the libraries' included.\n");
}

}  // namespace
}  // namespace selene
