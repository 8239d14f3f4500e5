#include "server/jobs/scheduler.h"

#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace selene::jobs {

Scheduler::Scheduler(JobStore* store, JobRunner* runner, DevicePool* pool, SchedulerOptions options)
    : store_(store), runner_(runner), pool_(pool), options_(std::move(options)) {}

Scheduler::~Scheduler() { Shutdown().IgnoreError(); }

Status Scheduler::Start() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return FailedPreconditionError("scheduler: already shut down");
    if (started_) return FailedPreconditionError("scheduler: already started");
    started_ = true;
  }
  Status recovered = store_->RecoverAfterRestart().status();
  if (recovered.ok()) recovered = store_->FailJobsWithDeadDependencies().status();
  absl::MutexLock lock(&mu_);
  if (!recovered.ok()) {
    started_ = false;  // nothing runs yet: the caller may try again
    return recovered;
  }
  if (stopping_) return FailedPreconditionError("scheduler: shut down while starting");
  dispatcher_ = std::thread([this] { DispatchLoop(); });
  return OkStatus();
}

StatusOr<SubmitResult> Scheduler::Submit(const spec::ResolvedJobSpec& spec,
                                         const std::string& request_id, int32_t priority) {
  StatusOr<SubmitResult> submitted = store_->Submit(spec, request_id, priority);
  if (submitted.ok()) Notify();
  return submitted;
}

StatusOr<v1::Job> Scheduler::Cancel(const std::string& id, const std::string& reason) {
  StatusOr<v1::Job> job;
  {
    // Under the lock Work holds while it moves a finished run: the request either reaches the
    // running job's stop flag, or finds the job already moved (and a requeued job is cancelled
    // at once), never a job in between.
    absl::MutexLock lock(&mu_);
    job = store_->RequestCancel(id, reason);
    if (job.ok() && job->state() == v1::JOB_STATE_RUNNING) {
      const auto found = running_.find(id);
      if (found != running_.end() && !found->second->done) {
        RunningJob& running = *found->second;
        if (running.cancel_reason.empty()) running.cancel_reason = reason;
        running.stop.Cancel();
      }
    }
    wake_ = true;
  }
  if (job.ok() && job->state() == v1::JOB_STATE_CANCELLED) {
    // Its dependents fail now, not at the dispatcher's next round.
    if (auto failed = store_->FailJobsWithDeadDependencies(); !failed.ok()) {
      ReportError(failed.status());
    }
  }
  return job;
}

void Scheduler::Notify() {
  absl::MutexLock lock(&mu_);
  wake_ = true;
}

Status Scheduler::Shutdown(absl::Time deadline) {
  std::thread dispatcher;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    // The dispatcher starts no job once stopping_ is set (it checks under this lock), so these
    // are all the jobs that will have run.
    for (auto& [id, job] : running_) job->stop.Interrupt();
    dispatcher = std::move(dispatcher_);
  }
  if (dispatcher.joinable()) dispatcher.join();
  {
    absl::MutexLock lock(&mu_);
    if (!mu_.AwaitWithDeadline(absl::Condition(this, &Scheduler::AllWorkersDone), deadline)) {
      std::vector<std::string> stopping;
      for (const auto& [id, job] : running_) {
        if (!job->done) stopping.push_back(id);
      }
      return absl::DeadlineExceededError(
          absl::StrCat("scheduler shutdown: jobs still checkpointing at the deadline: ",
                       absl::StrJoin(stopping, ", ")));
    }
  }
  ReapFinished();
  return OkStatus();
}

std::map<std::string, std::string> Scheduler::running_jobs() const {
  absl::MutexLock lock(&mu_);
  std::map<std::string, std::string> jobs;
  for (const auto& [id, job] : running_) {
    if (!job->done) jobs[id] = job->device;
  }
  return jobs;
}

int Scheduler::running_count() const { return static_cast<int>(running_jobs().size()); }

void Scheduler::DispatchLoop() {
  while (true) {
    ReapFinished();
    DispatchReady();
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      mu_.AwaitWithTimeout(absl::Condition(this, &Scheduler::WakeOrStopping),
                           options_.poll_interval);
    }
    wake_ = false;
    if (stopping_) return;
  }
}

void Scheduler::DispatchReady() {
  while (true) {
    const std::optional<std::string> device = pool_->Acquire();
    if (!device) {
      // Every slot busy: dependents of a job that just failed still fail now, not when a slot
      // frees (NextRunnable does it otherwise).
      if (auto failed = store_->FailJobsWithDeadDependencies(); !failed.ok()) {
        ReportError(failed.status());
      }
      return;
    }
    const auto release = [this, &device] {
      if (Status s = pool_->Release(*device); !s.ok()) ReportError(s);
    };
    StatusOr<std::optional<v1::Job>> next = store_->NextRunnable();
    if (!next.ok() || !next->has_value()) {
      release();
      if (!next.ok()) ReportError(next.status());
      return;
    }
    const std::string id = (*next)->id();

    // Start and registration under one lock, so Cancel and Shutdown see either a queued job or
    // a running one with its stop flag, never a started job without one.
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      release();
      return;
    }
    StatusOr<v1::Job> started = store_->Start(id, *device);
    if (!started.ok()) {
      release();
      // Cancelled between NextRunnable and Start: no longer queued, so the next pick differs.
      if (started.status().code() == absl::StatusCode::kFailedPrecondition) continue;
      ReportError(started.status());
      return;
    }
    if (const auto old = running_.find(id); old != running_.end()) {
      // Only a shutdown requeues a running job, and nothing starts after one: an entry left for
      // this id is a finished run not reaped yet, whose thread has ended or is about to.
      old->second->thread.join();
      running_.erase(old);
    }
    auto entry = std::make_unique<RunningJob>();
    entry->device = *device;
    RunningJob* const self = entry.get();
    running_[id] = std::move(entry);
    self->thread = std::thread(&Scheduler::Work, this, self, *std::move(started));
  }
}

void Scheduler::Work(RunningJob* self, v1::Job job) {
  const RunOutcome outcome = runner_->Run(job, self->device, self->stop);
  StatusOr<v1::Job> moved;
  bool terminal = true;
  {
    // See Cancel: a cancel that came after the run stopped for a shutdown still ends the job.
    absl::MutexLock lock(&mu_);
    RunOutcome::Kind kind = outcome.kind;
    if (kind == RunOutcome::Kind::kInterrupted && self->stop.cancelled()) {
      kind = RunOutcome::Kind::kCancelled;
    }
    switch (kind) {
      case RunOutcome::Kind::kSucceeded:
        moved = store_->Transition(job.id(), v1::JOB_STATE_SUCCEEDED);
        break;
      case RunOutcome::Kind::kFailed:
        moved = store_->Transition(job.id(), v1::JOB_STATE_FAILED, outcome.reason);
        break;
      case RunOutcome::Kind::kCancelled: {
        std::string reason = self->cancel_reason.empty() ? "cancelled" : self->cancel_reason;
        if (!outcome.reason.empty()) absl::StrAppend(&reason, " (", outcome.reason, ")");
        moved = store_->Transition(job.id(), v1::JOB_STATE_CANCELLED, reason);
        break;
      }
      case RunOutcome::Kind::kInterrupted:
        moved = store_->Transition(job.id(), v1::JOB_STATE_QUEUED, kShutdownReason);
        terminal = false;
        break;
    }
  }
  if (!moved.ok()) ReportError(moved.status());
  // The hook runs before the slot is freed, so hooks see jobs finish in the order they did.
  if (moved.ok() && terminal && options_.on_job_finished) options_.on_job_finished(*moved);
  if (Status s = pool_->Release(self->device); !s.ok()) ReportError(s);
  if (auto failed = store_->FailJobsWithDeadDependencies(); !failed.ok()) {
    ReportError(failed.status());
  }
  absl::MutexLock lock(&mu_);
  self->done = true;
  wake_ = true;
}

void Scheduler::ReapFinished() {
  std::vector<std::unique_ptr<RunningJob>> finished;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = running_.begin(); it != running_.end();) {
      if (it->second->done) {
        finished.push_back(std::move(it->second));
        it = running_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (const auto& job : finished) job->thread.join();
}

bool Scheduler::AllWorkersDone() const {
  for (const auto& [id, job] : running_) {
    if (!job->done) return false;
  }
  return true;
}

void Scheduler::ReportError(const Status& status) const {
  if (options_.on_error) options_.on_error(status);
}

}  // namespace selene::jobs
