// The `selene` commands: each takes the parsed command line and returns the process's exit
// code (see ExitCode in client/connection.h), having printed its output or one error line.
#pragma once

#include <string>

#include "client/args.h"
#include "client/connection.h"

namespace selene::client {

// Jobs (client/job_commands.cc).
int RunSubmit(const ParsedArgs& args, Connection& connection);
int RunGet(const ParsedArgs& args, Connection& connection);
int RunList(const ParsedArgs& args, Connection& connection);
int RunCancel(const ParsedArgs& args, Connection& connection);
int RunCompare(const ParsedArgs& args, Connection& connection);
int RunHealth(const ParsedArgs& args, Connection& connection);

// client/watch_command.cc.
int RunWatch(const ParsedArgs& args, Connection& connection);
int WatchJob(const std::string& job_id, Connection& connection);

// client/artifact_commands.cc.
int RunArtifacts(const ParsedArgs& args, Connection& connection);
int RunDownload(const ParsedArgs& args, Connection& connection);

// client/inference_commands.cc.
int RunSegment(const ParsedArgs& args, Connection& connection);
int RunClassify(const ParsedArgs& args, Connection& connection);
int RunModels(const ParsedArgs& args, Connection& connection);

// "SUCCEEDED" for JOB_STATE_SUCCEEDED.
std::string StateName(int state);

}  // namespace selene::client
