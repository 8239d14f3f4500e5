// `selene`: the command-line client of selene-server. It reads the command line, opens one
// connection and runs one command (client/commands.h); everything else happens on the server.
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <string>

#include "client/args.h"
#include "client/commands.h"
#include "client/connection.h"

namespace selene::client {
namespace {

struct Command {
  std::function<int(const ParsedArgs&, Connection&)> run;
  std::set<std::string> value_flags;
  std::set<std::string> bool_flags;
  std::string usage;  // first line: the synopsis; then what it does
};

const std::map<std::string, Command>& Commands() {
  static const auto* commands = new std::map<std::string, Command>{
      {"submit",
       {RunSubmit,
        {"set", "priority"},
        {"watch"},
        "selene submit SPEC.json [--set field.path=value ...] [--priority N] [--watch]\n"
        "  Queues a job from a JSON spec (each --set overrides one field, e.g.\n"
        "  --set training.epochs=4) and prints its id, the only output line. --watch then\n"
        "  follows it as `selene watch` does (and exits as it does)."}},
      {"get",
       {RunGet,
        {},
        {"json"},
        "selene get JOB [--json]\n"
        "  The job's state, progress, best epoch and latest metrics (--json: the Job message in\n"
        "  protobuf's JSON mapping)."}},
      {"list",
       {RunList,
        {"state"},
        {"json"},
        "selene list [--state queued|running|succeeded|failed|cancelled] [--json]\n"
        "  Jobs, newest first."}},
      {"watch",
       {RunWatch,
        {},
        {},
        "selene watch JOB\n"
        "  A progress bar for the running epoch (step/steps, images/s, ETA) and a metrics line\n"
        "  per finished epoch; exits 0 when the job succeeds, 1 when it fails or is cancelled."}},
      {"cancel",
       {RunCancel,
        {"reason"},
        {},
        "selene cancel JOB [--reason TEXT]\n"
        "  Cancels a queued job at once; a running one stops within a training step."}},
      {"artifacts",
       {RunArtifacts,
        {},
        {},
        "selene artifacts JOB\n"
        "  The job's files with sizes and sha256."}},
      {"download",
       {RunDownload,
        {"out"},
        {"all"},
        "selene download JOB (NAME... | --all) [--out DIR]\n"
        "  Fetches artifacts into DIR (default .) through NAME.part, resuming an interrupted\n"
        "  download, and checks each against the server's sha256 (a mismatch fails, exit 1)."}},
      {"segment",
       {RunSegment,
        {"model", "out", "threshold"},
        {"overlay"},
        "selene segment --model JOB|ALIAS IMAGE... [--out DIR] [--overlay] [--threshold T]\n"
        "  Writes DIR/<stem>_mask.png per image (binary: 255 foreground; multi-class: class id)\n"
        "  and, with --overlay, DIR/<stem>_overlay.png (the image with the mask tinted).\n"
        "  Aliases: latest, latest:binary_segmentation, latest:multiclass_segmentation."}},
      {"classify",
       {RunClassify,
        {"model", "top-k"},
        {},
        "selene classify --model JOB|ALIAS IMAGE... [--top-k K]\n"
        "  The K most probable labels per image (default 5)."}},
      {"models",
       {RunModels,
        {},
        {},
        "selene models\n"
        "  The servable models (succeeded jobs) with their aliases."}},
      {"health",
       {RunHealth,
        {},
        {},
        "selene health\n"
        "  The server's gRPC health status; exits 0 when SERVING."}},
      {"compare",
       {RunCompare,
        {},
        {"json"},
        "selene compare JOB... [--json]\n"
        "  Finished runs side by side (the server's comparison table, in Markdown)."}},
  };
  return *commands;
}

// To stdout when asked for, to stderr when the command is missing (a usage error).
void PrintHelp(std::ostream& out) {
  out << "selene: the command-line client of selene-server\n\n"
         "usage: selene [GLOBAL FLAGS] COMMAND [ARGS] (global flags may also follow the "
         "command)\n\ncommands:\n";
  for (const auto& [name, command] : Commands()) {
    out << "  " << command.usage.substr(0, command.usage.find('\n')) << "\n";
  }
  out << "  help [COMMAND]   this text, or one command's (also: selene COMMAND --help)\n"
         "\nglobal flags:\n"
         "  --server HOST:PORT   the server (default $SELENE_SERVER, else 127.0.0.1:50051)\n"
         "  --token-file FILE    bearer token: the file's first non-empty line\n"
         "  --tls-ca FILE        PEM root certificate: connect with TLS (default plaintext)\n"
         "  --timeout SECONDS    deadline of each call (default 30; streams run on)\n"
         "\nexit codes:\n"
         "  0  ok\n"
         "  1  the operation failed (server error; watched job failed or was cancelled;\n"
         "     sha256 mismatch)\n"
         "  2  usage error (bad flags or arguments, unreadable spec, image or token file)\n"
         "  3  server unreachable (UNAVAILABLE, or a deadline passed)\n"
         "  4  authentication failed (UNAUTHENTICATED: missing or wrong token)\n"
         "  5  not found (unknown job, artifact or model)\n"
         "Errors are one line on stderr: `selene: <problem>`.\n";
}

int Main(int argc, char** argv) {
  StatusOr<ParsedArgs> args = ParseArgs(argc, argv);
  if (!args.ok()) return ReportUsageError(args.status());
  if (args->command.empty() || args->command == "help") {
    if (args->command == "help" && !args->positional.empty()) {
      const auto it = Commands().find(args->positional[0]);
      if (it == Commands().end()) {
        PrintError("unknown command '" + args->positional[0] + "' (selene help lists them)");
        return kExitUsage;
      }
      std::cout << "usage: " << it->second.usage << "\n";
      return kExitOk;
    }
    const bool asked = !args->command.empty() || args->Enabled("help");
    PrintHelp(asked ? std::cout : std::cerr);
    return asked ? kExitOk : kExitUsage;
  }
  const auto it = Commands().find(args->command);
  if (it == Commands().end()) {
    PrintError("unknown command '" + args->command + "' (selene help lists them)");
    return kExitUsage;
  }
  const Command& command = it->second;
  if (args->Enabled("help")) {
    std::cout << "usage: " << command.usage << "\n\nglobal flags: --server HOST:PORT, "
              << "--token-file FILE, --tls-ca FILE, --timeout SECONDS (selene help)\n";
    return kExitOk;
  }
  if (const Status status = CheckCommandFlags(*args, command.value_flags, command.bool_flags);
      !status.ok()) {
    return ReportUsageError(status);
  }
  StatusOr<std::unique_ptr<Connection>> connection = Connection::Create(*args);
  if (!connection.ok()) return ReportUsageError(connection.status());
  return command.run(*args, **connection);
}

}  // namespace
}  // namespace selene::client

int main(int argc, char** argv) { return selene::client::Main(argc, argv); }
