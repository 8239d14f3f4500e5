// A child process for tests that run real binaries (selene-server, prometheus). Its stdout and
// stderr go to one log file, so a test can wait for a line without a pipe the child could block
// on. The destructor SIGKILLs and reaps it if it still runs, and the kernel kills it should the
// test process die first (PR_SET_PDEATHSIG).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace selene::testing {

class ChildProcess {
 public:
  // Starts argv[0] (a path) with the rest as its arguments.
  ChildProcess(std::vector<std::string> argv, std::string log_path);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  bool running() const { return pid_ > 0 && !exit_status_.has_value(); }
  void Signal(int signal);
  // The exit status once the child has ended within `timeout` (-N when signal N killed it).
  std::optional<int> Wait(absl::Duration timeout);
  // Everything it wrote so far.
  std::string Log() const;
  // The text between `prefix` and the next `end` in the log, once it appears; "" when it does
  // not within `timeout` or the child ends first.
  std::string WaitForLog(const std::string& prefix, const std::string& end,
                         absl::Duration timeout = absl::Seconds(30));

 private:
  const std::string log_path_;
  pid_t pid_ = -1;
  std::optional<int> exit_status_;
};

// A selene-server child's address, from its "selene-server listening on ADDRESS (state DIR)"
// line; "" when the line does not come within `timeout`.
std::string WaitForServerAddress(ChildProcess& server, absl::Duration timeout = absl::Seconds(30));

}  // namespace selene::testing
