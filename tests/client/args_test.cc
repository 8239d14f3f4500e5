// Tests client/args.h (global flags anywhere, '-' or '_' names, values after '=' or as the next
// argument, "--") and the formatting helpers of client/progress_bar.h.
#include "client/args.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "client/progress_bar.h"

namespace selene::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

StatusOr<ParsedArgs> Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "selene");
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  return ParseArgs(static_cast<int>(argv.size()), argv.data());
}

TEST(ArgsTest, GlobalFlagsGoBeforeOrAfterTheCommand) {
  StatusOr<ParsedArgs> args = Parse({"--server", "h:1", "submit", "spec.json", "--set", "a.b=1",
                                     "--set=c=2", "--token_file=t.txt", "--watch"});
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(args->command, "submit");
  EXPECT_THAT(args->positional, ElementsAre("spec.json"));
  EXPECT_EQ(args->Get("server"), "h:1");
  EXPECT_EQ(args->Get("token-file"), "t.txt");
  EXPECT_THAT(args->GetAll("set"), ElementsAre("a.b=1", "c=2"));
  EXPECT_TRUE(args->Has("watch"));
  EXPECT_TRUE(CheckCommandFlags(*args, {"set"}, {"watch"}).ok());
}

TEST(ArgsTest, UnknownFlagsAndMissingValuesAreNamed) {
  StatusOr<ParsedArgs> args = Parse({"list", "--jsn"});
  ASSERT_TRUE(args.ok());
  const Status status = CheckCommandFlags(*args, {"state"}, {"json"});
  EXPECT_THAT(std::string(status.message()), HasSubstr("unknown flag --jsn for 'list'"));
  EXPECT_THAT(std::string(Parse({"get", "--server"}).status().message()),
              HasSubstr("--server needs a value"));
  args = Parse({"list", "--json=yes"});
  ASSERT_TRUE(args.ok());
  EXPECT_FALSE(CheckCommandFlags(*args, {}, {"json"}).ok());
}

TEST(ArgsTest, EverythingAfterDoubleDashIsPositional) {
  StatusOr<ParsedArgs> args = Parse({"segment", "--model", "latest", "--", "--odd.png", "-"});
  ASSERT_TRUE(args.ok());
  EXPECT_EQ(args->Get("model"), "latest");
  EXPECT_THAT(args->positional, ElementsAre("--odd.png", "-"));
}

TEST(ProgressBarTest, FormatsDurationsAndSizes) {
  EXPECT_EQ(FormatDuration(12.4), "0:12");
  EXPECT_EQ(FormatDuration(3723), "1:02:03");
  EXPECT_EQ(FormatDuration(-1), "?");
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(7.5 * 1024 * 1024), "7.5 MiB");
}

}  // namespace
}  // namespace selene::client
