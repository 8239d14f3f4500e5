// Runs the real selene-train binary as a user would: --describe, usage and spec errors with
// their exit codes and messages, a tiny training run with all its artifacts and report, --inspect
// on real and broken data, and --compare over finished runs.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/testing/files.h"

namespace {

namespace fs = std::filesystem;
using ::selene::testing::ReadFile;
using ::testing::HasSubstr;

struct Outcome {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs selene-train with `args` (shell syntax) from the source directory.
Outcome RunSeleneTrain(const std::string& args) {
  const std::string command =
      absl::StrCat("cd '", SELENE_SOURCE_DIR, "' && '", SELENE_TRAIN_BIN, "' ", args, " 2>&1");
  Outcome outcome;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return outcome;
  char buffer[4096];
  size_t read = 0;
  while ((read = fread(buffer, 1, sizeof(buffer), pipe)) > 0) outcome.output.append(buffer, read);
  const int status = pclose(pipe);
  outcome.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return outcome;
}

TEST(SeleneTrainTest, DescribePrintsTheModelTable) {
  const Outcome run = RunSeleneTrain("--spec configs/demo_moon_unet.json --describe");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  std::string lower = run.output;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  EXPECT_THAT(lower, HasSubstr("total"));
  EXPECT_THAT(lower, HasSubstr("bottleneck"));
}

TEST(SeleneTrainTest, UnknownSetPathExits2NamingTheField) {
  const Outcome run = RunSeleneTrain(
      "--spec configs/demo_moon_unet.json --describe --set training.optimizer.lrr=0.1");
  EXPECT_EQ(run.exit_code, 2) << run.output;
  EXPECT_THAT(run.output, HasSubstr("selene-train: "));
  EXPECT_THAT(run.output, HasSubstr("training.optimizer.lrr: unknown field \"lrr\""));
}

TEST(SeleneTrainTest, BadSetValueExits2NamingFieldAndType) {
  const Outcome run =
      RunSeleneTrain("--spec configs/demo_moon_unet.json --describe --set training.epochs=ten");
  EXPECT_EQ(run.exit_code, 2) << run.output;
  EXPECT_THAT(run.output, HasSubstr("training.epochs: \"ten\" is not an integer"));
}

TEST(SeleneTrainTest, InvalidSpecExits2WithFieldPath) {
  const Outcome run =
      RunSeleneTrain("--spec configs/demo_moon_unet.json --describe --set training.batch_size=0");
  EXPECT_EQ(run.exit_code, 2) << run.output;
  EXPECT_THAT(run.output, HasSubstr("training.batch_size: 0 must be >= 1"));
}

TEST(SeleneTrainTest, MissingSpecFileExits2NamingTheFile) {
  const Outcome run = RunSeleneTrain("--spec configs/no_such_spec.json --out /tmp/unused");
  EXPECT_EQ(run.exit_code, 2) << run.output;
  EXPECT_THAT(run.output, HasSubstr("selene-train: configs/no_such_spec.json"));
}

TEST(SeleneTrainTest, UsageErrorsExit2) {
  EXPECT_EQ(RunSeleneTrain("--out /tmp/unused").exit_code, 2);  // no --spec
  const Outcome unknown = RunSeleneTrain("--spec configs/demo_moon_unet.json --epochz 3");
  EXPECT_EQ(unknown.exit_code, 2) << unknown.output;
  EXPECT_THAT(unknown.output, HasSubstr("unknown flag --epochz"));
  EXPECT_EQ(RunSeleneTrain("--spec configs/demo_moon_unet.json --set").exit_code, 2);
}

// Passes once the engine (models/, server/train/) is in: trains 2 epochs on a handful of
// synthetic images and checks every artifact.
TEST(SeleneTrainTest, TinyRunWritesAllArtifacts) {
  const fs::path out = fs::path(selene::testing::MakeTempDir("selene-train-tiny-run"));
  const Outcome run = RunSeleneTrain(absl::StrCat(
      "--spec configs/demo_moon_unet.json --out '", out.string(), "' --threads 2",
      " --set data.num_samples=16 --set data.image_size=32 --set model.unet.base_width=4",
      " --set training.epochs=2 --set training.batch_size=8 --set name=tiny-run"));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("tiny-run: binary_segmentation, unet model with "));
  EXPECT_THAT(run.output, HasSubstr("epoch 1/2"));
  EXPECT_THAT(run.output, HasSubstr("epoch 2/2"));
  EXPECT_THAT(run.output, HasSubstr(absl::StrCat("artifacts in ", out.string())));
  for (const char* name :
       {"best.pt", "last.pt", "history.csv", "metrics.json", "spec.json", "data_summary.json",
        "curves.png", "samples.png", "report.md", "run_summary.json"}) {
    EXPECT_TRUE(fs::exists(out / name)) << name << "\n" << run.output;
  }
  // Segmentation runs have no confusion matrix.
  EXPECT_FALSE(fs::exists(out / "confusion.png"));
  EXPECT_THAT(ReadFile(out / "report.md"), HasSubstr("![curves](curves.png)"));
  // A header row plus one row per epoch.
  const std::string history = ReadFile(out / "history.csv");
  std::vector<std::string> rows = absl::StrSplit(history, '\n', absl::SkipEmpty());
  EXPECT_EQ(rows.size(), 3u) << history;
  // spec.json is the exact spec with the overrides.
  const std::string spec = ReadFile(out / "spec.json");
  EXPECT_THAT(spec, HasSubstr("\"name\": \"tiny-run\""));
  EXPECT_THAT(spec, HasSubstr("\"num_samples\": \"16\""));
  EXPECT_THAT(spec, HasSubstr("\"base_width\": \"4\""));
  EXPECT_THAT(ReadFile(out / "metrics.json"), HasSubstr("dice"));
}

// ../shared/data, or "" when this checkout has no samples beside it.
std::string SharedData() {
  const char* dir = std::getenv("SELENE_SHARED_DATA");
  if (dir == nullptr || !fs::is_directory(dir)) return "";
  return dir;
}

TEST(SeleneTrainTest, InspectSummarisesTheTinyImageNetSample) {
  if (SharedData().empty()) GTEST_SKIP() << "SELENE_SHARED_DATA (../shared/data) is absent";
  const Outcome run = RunSeleneTrain(absl::StrCat(
      "--spec configs/classifier_tiny_imagenet.json --inspect --data_root '", SharedData(),
      "' --set data.path=tiny-imagenet-200-10c --set data.num_classes=10"));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("5,000 train, 500 val"));
  EXPECT_THAT(run.output, HasSubstr("Egyptian cat"));  // names from words.txt
  EXPECT_THAT(run.output, HasSubstr("0 unreadable, 0 unpaired"));
  EXPECT_FALSE(fs::exists(fs::path(SELENE_SOURCE_DIR) / "runs" / "inspect"));
}

// A folder of broken files: --inspect refuses it, naming the folder and the bad files.
TEST(SeleneTrainTest, InspectNamesUnusableFiles) {
  const fs::path root = fs::path(selene::testing::MakeTempDir("selene-train-inspect-root"));
  const fs::path moon = root / "moon";
  fs::create_directories(moon / "images" / "render");
  fs::create_directories(moon / "images" / "ground");
  std::ofstream(moon / "images" / "render" / "render0001.png") << "not a png at all";
  std::ofstream(moon / "images" / "ground" / "ground0001.png");  // empty
  const Outcome run = RunSeleneTrain(
      absl::StrCat("--spec configs/unet_moon.json --inspect --data_root '", root.string(), "'"));
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr("render0001.png"));
}

TEST(SeleneTrainTest, DataPathOutsideTheRootExits2) {
  const fs::path root = fs::path(selene::testing::MakeTempDir("selene-train-escape-root"));
  fs::create_directories(root);
  const Outcome run =
      RunSeleneTrain(absl::StrCat("--spec configs/unet_moon.json --inspect --data_root '",
                                  root.string(), "' --set data.path=../../etc"));
  EXPECT_EQ(run.exit_code, 2) << run.output;
  EXPECT_THAT(run.output, HasSubstr("data.path"));
}

TEST(SeleneTrainTest, CompareTabulatesFinishedRuns) {
  std::vector<fs::path> runs;
  for (int width : {4, 8}) {
    const fs::path out =
        fs::path(selene::testing::MakeTempDir(absl::StrCat("selene-train-compare-", width)));
    const Outcome run = RunSeleneTrain(absl::StrCat(
        "--spec configs/demo_moon_unet.json --out '", out.string(), "' --threads 2",
        " --set data.num_samples=16 --set data.image_size=32 --set model.unet.base_width=", width,
        " --set training.epochs=2 --set training.batch_size=8 --set name=width-", width));
    ASSERT_EQ(run.exit_code, 0) << run.output;
    runs.push_back(out);
  }
  const Outcome compare =
      RunSeleneTrain(absl::StrCat("--compare '", runs[0].string(), "' '", runs[1].string(), "'"));
  ASSERT_EQ(compare.exit_code, 0) << compare.output;
  EXPECT_THAT(compare.output, HasSubstr("width-4"));
  EXPECT_THAT(compare.output, HasSubstr("width-8"));
  std::vector<std::string> rows = absl::StrSplit(compare.output, '\n', absl::SkipEmpty());
  EXPECT_GE(rows.size(), 4u) << compare.output;  // header, rule, two runs

  const Outcome missing = RunSeleneTrain("--compare /nonexistent/run");
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_THAT(missing.output, HasSubstr("/nonexistent/run"));
}

}  // namespace
