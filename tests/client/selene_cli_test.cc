// Tests the `selene` binary (client/) end to end against a real selene-server child process on a
// free loopback port with a token file: submit (with --set and --watch), watch, artifacts,
// download (sha256 against the server's files, and a resumed .part), segment with --overlay,
// compare, list --json and get; watch across a server restart; TLS; and the error paths with their
// exit codes and one-line messages: server down (3), bad token (4), unknown job (5), unreadable
// image and usage errors (2).
#include <fcntl.h>
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/sha256.h"
#include "selene/v1/training_service.pb.h"
#include "tests/testing/child_process.h"
#include "tests/testing/files.h"
#include "tests/testing/loopback.h"

#ifndef SELENE_SERVER_BINARY
#error "SELENE_SERVER_BINARY must name the selene-server executable"
#endif
#ifndef SELENE_CLI_BINARY
#error "SELENE_CLI_BINARY must name the selene executable"
#endif

namespace selene {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::ReadFile;
using ::testing::StartsWith;

constexpr char kToken[] = "cli-test-token";

void WriteFile(const fs::path& path, const std::string& bytes) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << bytes;
}

std::string Quote(const std::string& arg) {
  std::string quoted = "'";
  for (char c : arg) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

struct CliResult {
  int code = -1;
  std::string out;
  std::string err;
};

// Runs `selene ARGS` with stdout captured and stderr in a file; the exit code as the shell sees it.
CliResult RunCli(const fs::path& dir, const std::vector<std::string>& args) {
  const fs::path err_path = dir / "cli.err";
  std::string command = Quote(SELENE_CLI_BINARY);
  for (const std::string& arg : args) absl::StrAppend(&command, " ", Quote(arg));
  absl::StrAppend(&command, " 2>", Quote(err_path.string()));
  CliResult result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.out.append(buffer, n);
  const int status = ::pclose(pipe);
  result.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.err = ReadFile(err_path);
  return result;
}

int CountLines(const std::string& text) {
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

// A selene-server child for these tests (token auth, one training thread), its output in
// <dir>/server<run>.log.
class Server : public selene::testing::ChildProcess {
 public:
  // `listen` "127.0.0.1:0" picks a free port; a restart passes the first run's address.
  explicit Server(const fs::path& dir, const std::string& listen = "127.0.0.1:0", int run = 1,
                  const std::vector<std::string>& extra_flags = {})
      : ChildProcess(Args(dir, listen, extra_flags),
                     (dir / absl::StrCat("server", run, ".log")).string()) {}

  std::string WaitForAddress() { return selene::testing::WaitForServerAddress(*this); }

  // SIGTERM and the exit code (-1 if it took longer than 15 s or died of a signal).
  int Stop() {
    Signal(SIGTERM);
    const std::optional<int> status = Wait(absl::Seconds(15));
    return status.has_value() && *status >= 0 ? *status : -1;
  }

 private:
  static std::vector<std::string> Args(const fs::path& dir, const std::string& listen,
                                       const std::vector<std::string>& extra_flags) {
    WriteFile(dir / "tokens.txt", absl::StrCat(kToken, "\n"));
    fs::create_directories(dir / "data");
    std::vector<std::string> args = {SELENE_SERVER_BINARY,
                                     "--listen=" + listen,
                                     "--metrics_listen=127.0.0.1:0",
                                     "--http_listen=127.0.0.1:0",
                                     "--state_dir=" + (dir / "state").string(),
                                     "--data_root=" + (dir / "data").string(),
                                     "--devices=cpu",
                                     "--training_threads=1",
                                     "--shutdown_grace_s=2",
                                     "--token_file=" + (dir / "tokens.txt").string()};
    args.insert(args.end(), extra_flags.begin(), extra_flags.end());
    return args;
  }
};

constexpr char kTinySpec[] = R"json({
  "name": "cli-moon",
  "task": "binary_segmentation",
  "model": {"unet": {"base_width": 4}},
  "data": {"kind": "synthetic_moon", "num_samples": 16, "image_size": 32},
  "training": {"epochs": 2, "batch_size": 8, "monitor": "dice"}
})json";

TEST(SeleneCliTest, ServerDownIsExitThreeWithOneLine) {
  const fs::path dir = testing::MakeTempDir("selene-cli");
  const std::string server = absl::StrCat("127.0.0.1:", selene::testing::UnusedLoopbackPort());
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--server", server, "list"},
        std::vector<std::string>{"get", "job-1", "--server=" + server},
        std::vector<std::string>{"health", "--server", server}}) {
    const CliResult result = RunCli(dir, args);
    EXPECT_EQ(result.code, 3) << result.err;
    EXPECT_THAT(result.err, StartsWith("selene: cannot reach selene-server at " + server));
    EXPECT_EQ(CountLines(result.err), 1) << result.err;
    EXPECT_EQ(result.out, "");
  }
  // SELENE_SERVER stands in for --server.
  ::setenv("SELENE_SERVER", server.c_str(), 1);
  const CliResult from_env = RunCli(dir, {"list"});
  ::unsetenv("SELENE_SERVER");
  EXPECT_EQ(from_env.code, 3);
  EXPECT_THAT(from_env.err, HasSubstr(server));
}

TEST(SeleneCliTest, LocalProblemsAreExitTwoNamingTheCulprit) {
  const fs::path dir = testing::MakeTempDir("selene-cli");
  const std::string server = absl::StrCat("127.0.0.1:", selene::testing::UnusedLoopbackPort());
  const std::string missing = (dir / "no_such.png").string();
  CliResult result = RunCli(dir, {"segment", "--server", server, "--model", "latest", missing});
  EXPECT_EQ(result.code, 2);
  EXPECT_EQ(result.err, absl::StrCat("selene: cannot read image ", missing, ": no such file\n"));

  result = RunCli(dir, {"frobnicate"});
  EXPECT_EQ(result.code, 2);
  EXPECT_THAT(result.err, HasSubstr("unknown command 'frobnicate'"));

  result = RunCli(dir, {"list", "--bogus"});
  EXPECT_EQ(result.code, 2);
  EXPECT_THAT(result.err, HasSubstr("unknown flag --bogus"));

  result = RunCli(dir, {"submit", (dir / "missing.json").string()});
  EXPECT_EQ(result.code, 2);
  EXPECT_THAT(result.err, HasSubstr("missing.json"));

  WriteFile(dir / "spec.json", kTinySpec);
  result = RunCli(dir, {"submit", (dir / "spec.json").string(), "--set", "training.epoks=3",
                        "--server", server});
  EXPECT_EQ(result.code, 2);
  EXPECT_THAT(result.err, HasSubstr("epoks"));
  EXPECT_EQ(CountLines(result.err), 1) << result.err;

  result = RunCli(dir, {"list", "--token-file", (dir / "no_tokens.txt").string()});
  EXPECT_EQ(result.code, 2);
  EXPECT_THAT(result.err, HasSubstr("no_tokens.txt"));

  result = RunCli(dir, {"help"});
  EXPECT_EQ(result.code, 0);
  EXPECT_THAT(result.out, HasSubstr("exit codes"));
  result = RunCli(dir, {"download", "--help"});
  EXPECT_EQ(result.code, 0);
  EXPECT_THAT(result.out, HasSubstr("selene download JOB"));
}

TEST(SeleneCliTest, TrainsDownloadsSegmentsAndComparesThroughTheServer) {
  const fs::path dir = testing::MakeTempDir("selene-cli");
  Server server(dir);
  const std::string address = server.WaitForAddress();
  ASSERT_FALSE(address.empty()) << server.Log();
  const std::string token_file = (dir / "tokens.txt").string();
  const auto cli = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"--server", address, "--token-file", token_file});
    return RunCli(dir, args);
  };

  // Authentication and unknown names.
  WriteFile(dir / "wrong.txt", "not-the-token\n");
  CliResult result =
      RunCli(dir, {"--server", address, "--token-file", (dir / "wrong.txt").string(), "list"});
  EXPECT_EQ(result.code, 4) << result.err;
  EXPECT_THAT(result.err, StartsWith("selene: authentication failed"));
  EXPECT_EQ(CountLines(result.err), 1) << result.err;
  result = RunCli(dir, {"--server", address, "list"});
  EXPECT_EQ(result.code, 4) << result.err;
  result = cli({"get", "job-999"});
  EXPECT_EQ(result.code, 5) << result.err;
  EXPECT_THAT(result.err, AllOf(StartsWith("selene: "), HasSubstr("job-999")));
  EXPECT_EQ(CountLines(result.err), 1) << result.err;
  result = cli({"health"});
  EXPECT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("SERVING"));

  // Submit: the id is the only line; --watch follows the job to its end.
  WriteFile(dir / "spec.json", kTinySpec);
  result = cli({"submit", (dir / "spec.json").string(), "--watch"});
  ASSERT_EQ(result.code, 0) << result.out << result.err << server.Log();
  const std::string job =
      std::string(absl::StripAsciiWhitespace(result.out.substr(0, result.out.find('\n'))));
  EXPECT_THAT(job, StartsWith("job-"));
  EXPECT_THAT(result.out, HasSubstr("epoch 1/2  train_loss "));
  EXPECT_THAT(result.out, HasSubstr("epoch 2/2  train_loss "));
  EXPECT_THAT(result.out, HasSubstr("dice "));
  EXPECT_THAT(result.out, HasSubstr(job + ": SUCCEEDED"));

  result = cli({"submit", (dir / "spec.json").string(), "--set", "name=cli-moon-2", "--set",
                "model.unet.base_width=6", "--priority", "3"});
  ASSERT_EQ(result.code, 0) << result.err;
  EXPECT_EQ(CountLines(result.out), 1) << result.out;
  const std::string second = std::string(absl::StripAsciiWhitespace(result.out));
  result = cli({"watch", second});
  EXPECT_EQ(result.code, 0) << result.out << result.err;
  EXPECT_THAT(result.out, HasSubstr("epoch 2/2  train_loss "));

  // Artifacts and downloads, checked against the server's own files.
  const fs::path job_dir = dir / "state" / "jobs" / job;
  const std::string best_sha = Sha256Hex(ReadFile(job_dir / "best.pt"));
  ASSERT_EQ(best_sha.size(), 64u);
  result = cli({"artifacts", job});
  EXPECT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out, AllOf(HasSubstr("best.pt"), HasSubstr(best_sha), HasSubstr("report.md")));

  const fs::path out = dir / "out";
  result = cli({"download", job, "best.pt", "report.md", "--out", out.string()});
  EXPECT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("sha256 ok"));
  EXPECT_EQ(Sha256Hex(ReadFile(out / "best.pt")), best_sha);
  EXPECT_EQ(ReadFile(out / "report.md"), ReadFile(job_dir / "report.md"));
  EXPECT_FALSE(fs::exists(out / "best.pt.part"));

  // A broken download: half the file as .part; the next run asks from there.
  const fs::path resumed = dir / "resumed";
  fs::create_directories(resumed);
  const std::string best = ReadFile(job_dir / "best.pt");
  WriteFile(resumed / "best.pt.part", best.substr(0, best.size() / 2));
  result = cli({"download", job, "best.pt", "--out", resumed.string()});
  EXPECT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr(absl::StrCat("resuming at ")));
  EXPECT_EQ(Sha256Hex(ReadFile(resumed / "best.pt")), best_sha);
  EXPECT_FALSE(fs::exists(resumed / "best.pt.part"));

  // A .part that is not a prefix of the file fails the check and is dropped.
  const fs::path corrupt = dir / "corrupt";
  fs::create_directories(corrupt);
  WriteFile(corrupt / "best.pt.part", std::string(best.size() / 2, 'x'));
  result = cli({"download", job, "best.pt", "--out", corrupt.string()});
  EXPECT_EQ(result.code, 1);
  EXPECT_THAT(result.err, HasSubstr("sha256 mismatch"));
  EXPECT_FALSE(fs::exists(corrupt / "best.pt"));
  EXPECT_FALSE(fs::exists(corrupt / "best.pt.part"));

  result = cli({"download", job, "no_such_file.bin", "--out", out.string()});
  EXPECT_EQ(result.code, 5) << result.err;
  result = cli({"download", job, "--all", "--out", (dir / "all").string()});
  EXPECT_EQ(result.code, 0) << result.err;
  EXPECT_TRUE(fs::exists(dir / "all" / "history.csv"));

  // Segment an image of an odd size: the mask comes back at that size.
  cv::Mat image(29, 45, CV_8UC3);
  cv::randu(image, cv::Scalar::all(0), cv::Scalar::all(255));
  ASSERT_TRUE(cv::imwrite((dir / "rock.png").string(), image));
  const fs::path masks = dir / "masks";
  result = cli({"segment", "--model", job, (dir / "rock.png").string(), "--out", masks.string(),
                "--overlay", "--threshold", "0.4"});
  ASSERT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out, AllOf(HasSubstr("rock_mask.png"), HasSubstr("(45 x 29, foreground "),
                                HasSubstr("rock_overlay.png")));
  const cv::Mat mask = cv::imread((masks / "rock_mask.png").string(), cv::IMREAD_UNCHANGED);
  EXPECT_EQ(mask.cols, 45);
  EXPECT_EQ(mask.rows, 29);
  EXPECT_EQ(mask.channels(), 1);
  const cv::Mat overlay = cv::imread((masks / "rock_overlay.png").string(), cv::IMREAD_COLOR);
  EXPECT_EQ(overlay.size(), image.size());

  // Unreadable and undecodable images; unknown model.
  result = cli({"segment", "--model", job, (dir / "gone.png").string()});
  EXPECT_EQ(result.code, 2);
  EXPECT_THAT(result.err, HasSubstr("gone.png"));
  WriteFile(dir / "garbage.png", "this is not a png");
  result = cli({"segment", "--model", job, (dir / "garbage.png").string()});
  EXPECT_EQ(result.code, 1) << result.err;
  EXPECT_THAT(result.err, HasSubstr("garbage.png"));
  result = cli({"segment", "--model", "job-999", (dir / "rock.png").string()});
  EXPECT_EQ(result.code, 5) << result.err;

  // Comparison, listings, models.
  result = cli({"compare", job, second});
  EXPECT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out, AllOf(HasSubstr(job), HasSubstr(second), HasSubstr("|")));
  result = cli({"list", "--json"});
  ASSERT_EQ(result.code, 0) << result.err;
  v1::ListJobsResponse listed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(result.out, &listed).ok()) << result.out;
  ASSERT_EQ(listed.jobs_size(), 2);
  EXPECT_EQ(listed.jobs(0).id(), second);  // newest first
  EXPECT_EQ(listed.jobs(0).priority(), 3);
  EXPECT_EQ(listed.jobs(0).name(), "cli-moon-2");
  EXPECT_EQ(listed.jobs(1).state(), v1::JOB_STATE_SUCCEEDED);
  result = cli({"list", "--state", "succeeded"});
  EXPECT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out, AllOf(HasSubstr(job), HasSubstr("SUCCEEDED")));
  result = cli({"get", job});
  EXPECT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out, AllOf(HasSubstr("SUCCEEDED"), HasSubstr("2/2")));
  result = cli({"models"});
  EXPECT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out, AllOf(HasSubstr(job), HasSubstr("latest")));
  result = cli({"cancel", job});
  EXPECT_EQ(result.code, 1) << result.err;  // finished: FAILED_PRECONDITION

  // Classification: top-k labels; a segmentation model refuses it (INVALID_ARGUMENT, exit 1).
  WriteFile(dir / "shapes.json", R"json({
    "name": "cli-shapes", "task": "classification",
    "model": {"classifier": {"stem_width": 8, "stage_widths": [8, 8, 8, 8],
                             "stage_blocks": [1, 1, 1, 1]}},
    "data": {"kind": "synthetic_shapes", "num_samples": 32, "image_size": 32},
    "training": {"epochs": 1, "batch_size": 8}
  })json");
  result = cli({"submit", (dir / "shapes.json").string(), "--watch"});
  ASSERT_EQ(result.code, 0) << result.out << result.err;
  result = cli({"classify", "--model", "latest:classification", "--top-k", "3",
                (dir / "rock.png").string()});
  EXPECT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out, AllOf(HasSubstr("rock.png: "), HasSubstr("%")));
  EXPECT_EQ(std::count(result.out.begin(), result.out.end(), '%'), 3) << result.out;
  result = cli({"classify", "--model", job, (dir / "rock.png").string()});
  EXPECT_EQ(result.code, 1) << result.err;

  // A cancelled job: cancel answers, watch ends non-zero naming the state.
  result = cli({"submit", (dir / "spec.json").string(), "--set", "training.epochs=200"});
  ASSERT_EQ(result.code, 0) << result.err;
  const std::string doomed = std::string(absl::StripAsciiWhitespace(result.out));
  result = cli({"cancel", doomed, "--reason", "test over"});
  EXPECT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out, StartsWith(doomed + ": "));
  result = cli({"watch", doomed});
  EXPECT_EQ(result.code, 1) << result.out << result.err;
  EXPECT_THAT(result.out, HasSubstr(doomed + ": CANCELLED"));
  EXPECT_THAT(result.err, AllOf(HasSubstr("CANCELLED"), HasSubstr("test over")));

  EXPECT_EQ(server.Stop(), 0) << server.Log();
}

// TLS: with the server's certificate as --tls-ca the CLI talks TLS; without it (plaintext to a
// TLS port) the server is unreachable, exit 3.
TEST(SeleneCliTest, TalksTlsWithARootCertificate) {
  const fs::path dir = testing::MakeTempDir("selene-cli");
  const std::string cert = (dir / "server.pem").string();
  const std::string key = (dir / "server.key").string();
  const std::string openssl =
      absl::StrCat("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost ",
                   "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout ", Quote(key),
                   " -out ", Quote(cert), " >/dev/null 2>&1");
  if (std::system(openssl.c_str()) != 0) GTEST_SKIP() << "openssl cannot make a certificate";
  Server server(dir, "127.0.0.1:0", 1, {"--tls_cert=" + cert, "--tls_key=" + key});
  const std::string address = server.WaitForAddress();
  ASSERT_FALSE(address.empty()) << server.Log();
  const std::string tokens = (dir / "tokens.txt").string();
  CliResult result =
      RunCli(dir, {"--server", address, "--tls-ca", cert, "--token-file", tokens, "list"});
  EXPECT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("| id"));
  result = RunCli(dir, {"--server", address, "--token-file", tokens, "list"});
  EXPECT_EQ(result.code, 3) << result.err;
  EXPECT_EQ(CountLines(result.err), 1) << result.err;
  result = RunCli(dir, {"--server", address, "--tls-ca", (dir / "none.pem").string(), "list"});
  EXPECT_EQ(result.code, 2);
  EXPECT_THAT(result.err, HasSubstr("none.pem"));
  EXPECT_EQ(server.Stop(), 0) << server.Log();
}

// A server killed with SIGKILL mid-training and restarted on the same address: `selene watch`
// reconnects, resumes after the last event it saw and still ends with the job's success.
TEST(SeleneCliTest, WatchReconnectsAcrossAServerRestart) {
  const fs::path dir = testing::MakeTempDir("selene-cli");
  auto first = std::make_unique<Server>(dir);
  const std::string address = first->WaitForAddress();
  ASSERT_FALSE(address.empty()) << first->Log();
  const std::vector<std::string> globals = {"--server", address, "--token-file",
                                            (dir / "tokens.txt").string()};
  WriteFile(dir / "spec.json", kTinySpec);
  std::vector<std::string> args = globals;
  for (const char* arg : {"submit", "--set", "data.num_samples=160", "--set", "data.image_size=64",
                          "--set", "model.unet.base_width=8", "--set", "training.epochs=4"}) {
    args.push_back(arg);
  }
  args.insert(args.begin() + static_cast<long>(globals.size()) + 1, (dir / "spec.json").string());
  CliResult result = RunCli(dir, args);
  ASSERT_EQ(result.code, 0) << result.err;
  const std::string job = std::string(absl::StripAsciiWhitespace(result.out));

  std::string command = Quote(SELENE_CLI_BINARY);
  for (const std::string& arg : globals) absl::StrAppend(&command, " ", Quote(arg));
  absl::StrAppend(&command, " watch ", job, " 2>", Quote((dir / "watch.err").string()));
  FILE* watch = ::popen(command.c_str(), "r");
  ASSERT_NE(watch, nullptr);

  // Kill the server once the first epoch's checkpoint exists, then bring it back.
  const fs::path checkpoint = dir / "state" / "jobs" / job / "last.pt";
  for (const absl::Time deadline = absl::Now() + absl::Seconds(30);
       !fs::exists(checkpoint) && absl::Now() < deadline;) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(fs::exists(checkpoint));
  first->Signal(SIGKILL);
  first->Wait(absl::Seconds(10));
  absl::SleepFor(absl::Milliseconds(300));
  Server second(dir, address, 2);
  ASSERT_EQ(second.WaitForAddress(), address) << second.Log();

  std::string out;
  char buffer[4096];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), watch)) > 0) out.append(buffer, n);
  const int status = ::pclose(watch);
  const std::string err = ReadFile(dir / "watch.err");
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out << err << second.Log();
  EXPECT_THAT(err, HasSubstr("reconnecting"));
  EXPECT_THAT(out, HasSubstr("epoch 4/4  train_loss "));
  EXPECT_THAT(out, HasSubstr(job + ": SUCCEEDED"));
  EXPECT_EQ(second.Stop(), 0) << second.Log();
}

}  // namespace
}  // namespace selene
