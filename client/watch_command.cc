// watch: follows a job's WatchJob stream, a progress bar for the running epoch and a metrics line
// per finished epoch, reconnecting from the last sequence seen when the stream breaks.
#include <algorithm>
#include <iostream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/commands.h"
#include "client/progress_bar.h"
#include "common/number_format.h"

namespace selene::client {
namespace {

// Enough for a restarting server to come back (a second or two) before the watch gives up.
constexpr int kReconnects = 10;

bool IsTerminal(v1::JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
         state == v1::JOB_STATE_CANCELLED;
}

std::string EpochLine(const v1::EpochEnd& end) {
  std::string line =
      absl::StrCat("epoch ", end.epoch(), "/", end.epochs(), "  train_loss ",
                   FormatValue(end.train_loss()), "  val_loss ", FormatValue(end.val_loss()));
  std::vector<std::pair<std::string, double>> metrics(end.metrics().begin(), end.metrics().end());
  // The monitor first, then the rest by name: the number people look for leads.
  std::sort(metrics.begin(), metrics.end(), [&](const auto& a, const auto& b) {
    const bool a_monitor = a.first == end.monitor();
    const bool b_monitor = b.first == end.monitor();
    return a_monitor != b_monitor ? a_monitor : a.first < b.first;
  });
  for (const auto& [name, value] : metrics) {
    absl::StrAppend(&line, "  ", name, " ", FormatValue(value));
  }
  absl::StrAppend(&line,
                  absl::StrFormat("  %.1fs  %.0f img/s", end.seconds(), end.images_per_second()));
  if (end.is_best()) absl::StrAppend(&line, "  *best*");
  return line;
}

}  // namespace

int WatchJob(const std::string& job_id, Connection& connection) {
  v1::Job job;
  {
    v1::GetJobRequest request;
    request.set_job_id(job_id);
    grpc::ClientContext context;
    connection.Prepare(&context);
    const grpc::Status status = connection.training().GetJob(&context, request, &job);
    if (!status.ok()) return connection.Fail(status);
  }
  int64_t epochs = job.epochs();
  int64_t last_sequence = 0;
  v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
  std::string reason;
  ProgressBar bar;
  int failures = 0;
  while (true) {
    v1::WatchJobRequest request;
    request.set_job_id(job_id);
    request.set_after_sequence(last_sequence);
    grpc::ClientContext context;
    connection.Prepare(&context, /*stream=*/true);
    std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader =
        connection.training().WatchJob(&context, request);
    v1::JobEvent event;
    while (reader->Read(&event)) {
      failures = 0;
      last_sequence = std::max(last_sequence, event.sequence());
      if (event.has_step_progress()) {
        const v1::StepProgress& p = event.step_progress();
        bar.Update(absl::StrCat("epoch ", p.epoch(), "/", epochs), static_cast<double>(p.step()),
                   static_cast<double>(p.steps()),
                   absl::StrFormat("%d/%d  %.0f img/s  ETA %s  loss %s", p.step(), p.steps(),
                                   p.images_per_second(), FormatDuration(p.eta_seconds()),
                                   FormatValue(p.loss())));
      } else if (event.has_epoch_end()) {
        bar.Finish();
        epochs = event.epoch_end().epochs();
        std::cout << EpochLine(event.epoch_end()) << std::endl;
      } else if (event.has_state_change()) {
        bar.Finish();
        const v1::StateChange& change = event.state_change();
        state = change.to_state();
        reason = change.reason();
        if (!IsTerminal(state)) {
          std::cout << job_id << ": " << StateName(state)
                    << (reason.empty() ? "" : absl::StrCat(" (", reason, ")")) << std::endl;
        }
      }
    }
    const grpc::Status status = reader->Finish();
    bar.Finish();
    if (status.ok() || IsTerminal(state)) break;
    // A broken stream (server restart, network): resume after the last event seen.
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE && ++failures <= kReconnects) {
      std::cerr << "selene: lost the stream (" << status.error_message() << "); reconnecting"
                << std::endl;
      absl::SleepFor(absl::Seconds(1));
      continue;
    }
    return connection.Fail(status);
  }
  if (!IsTerminal(state)) {
    // The stream ended without its terminal event (should not happen): ask for the job.
    v1::GetJobRequest request;
    request.set_job_id(job_id);
    grpc::ClientContext context;
    connection.Prepare(&context);
    const grpc::Status status = connection.training().GetJob(&context, request, &job);
    if (!status.ok()) return connection.Fail(status);
    state = job.state();
    reason = job.error();
  }
  if (state == v1::JOB_STATE_SUCCEEDED) {
    std::cout << job_id << ": SUCCEEDED" << std::endl;
    return kExitOk;
  }
  std::cout << job_id << ": " << StateName(state) << (reason.empty() ? "" : ": " + reason)
            << std::endl;
  PrintError(
      absl::StrCat(job_id, " ended ", StateName(state), reason.empty() ? "" : ": " + reason));
  return kExitFailed;
}

int RunWatch(const ParsedArgs& args, Connection& connection) {
  if (args.positional.size() != 1) {
    PrintError("usage: selene watch JOB");
    return kExitUsage;
  }
  return WatchJob(args.positional[0], connection);
}

}  // namespace selene::client
