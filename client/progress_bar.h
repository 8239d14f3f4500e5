// A one-line progress bar for watch and download: on a terminal it redraws in place with '\r';
// otherwise (a pipe, a log file) it prints a plain line now and then, so logs stay readable.
#pragma once

#include <cstdio>
#include <string>

#include "absl/time/time.h"

namespace selene::client {

class ProgressBar {
 public:
  explicit ProgressBar(FILE* out = stdout);

  // Shows `prefix [#####.....] suffix` for done/total. Off a terminal, prints at most one line
  // every few seconds (and always the one where done == total).
  void Update(const std::string& prefix, double done, double total, const std::string& suffix);
  // Ends the bar's line (on a terminal) so the next output starts on a fresh line.
  void Finish();

 private:
  FILE* out_;
  bool tty_;
  bool drawn_ = false;
  absl::Time last_plain_ = absl::InfinitePast();
};

// "0:12", "1:02:03".
std::string FormatDuration(double seconds);
// "1.5 MiB".
std::string FormatBytes(double bytes);

}  // namespace selene::client
