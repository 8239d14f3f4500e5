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
  // A shared store's RUNNING jobs may be other workers' and live: only this worker's own (a
  // restart under the same --worker_id) come back now; the others' when their leases expire.
  Status recovered =
      store_->RecoverAfterRestart(store_->exclusive() ? "" : options_.worker_id).status();
  if (recovered.ok()) recovered = store_->FailJobsWithDeadDependencies().status();
  absl::MutexLock lock(&mu_);
  if (!recovered.ok()) {
    started_ = false;  // nothing runs yet: the caller may try again
    return recovered;
  }
  if (stopping_) return FailedPreconditionError("scheduler: shut down while starting");
  dispatcher_ = std::thread([this] { DispatchLoop(); });
  if (lease() != absl::InfiniteDuration()) heartbeat_ = std::thread([this] { HeartbeatLoop(); });
  return OkStatus();
}

absl::Duration Scheduler::lease() const {
  return store_->exclusive() ? absl::InfiniteDuration() : options_.lease;
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

void Scheduler::OnOtherServerChange(const v1::JobEvent& nudge) {
  std::vector<std::string> ids;
  {
    absl::MutexLock lock(&mu_);
    wake_ = true;
    for (const auto& [id, job] : running_) {
      if (!job->done && (nudge.job_id().empty() || nudge.job_id() == id)) ids.push_back(id);
    }
  }
  for (const std::string& id : ids) {
    StatusOr<v1::Job> stored = store_->Get(id);
    if (stored.ok()) {
      ApplyCancelRequest(*stored);
    } else {
      ReportError(stored.status());
    }
  }
}

void Scheduler::ExtendLocalLease(const Lease& held, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  const auto found = running_.find(held.job_id);
  if (found != running_.end() && found->second->lease.token == held.token) {
    found->second->stop.HoldLeaseUntil(deadline);
  }
}

void Scheduler::ApplyCancelRequest(const v1::Job& stored) {
  if (!stored.cancel_requested()) return;
  absl::MutexLock lock(&mu_);
  const auto found = running_.find(stored.id());
  if (found == running_.end() || found->second->done) return;
  RunningJob& running = *found->second;
  if (running.cancel_reason.empty()) {
    running.cancel_reason = stored.cancel_reason().empty() ? "cancelled" : stored.cancel_reason();
  }
  running.stop.Cancel();
}

void Scheduler::HeartbeatLoop() {
  const absl::Duration interval = lease() / 3;
  while (true) {
    std::vector<Lease> leases;
    {
      absl::MutexLock lock(&mu_);
      // Shutdown waits for the running jobs to stop: their leases are renewed until then.
      if (stopping_ && AllWorkersDone()) return;
      for (const auto& [id, job] : running_) {
        if (!job->done) leases.push_back(job->lease);
      }
    }
    // Other workers' expired jobs go back to the queue even while every slot here is busy
    // (ClaimNext requeues them too), so the fleet shows them QUEUED, not RUNNING on a dead worker.
    if (auto requeued = store_->RequeueExpiredLeases(); !requeued.ok()) {
      ReportError(requeued.status());
    }
    for (const Lease& held : leases) {
      const absl::Time asked = absl::Now();
      StatusOr<v1::Job> renewed = store_->RenewLease(held, lease());
      if (renewed.ok()) {
        ExtendLocalLease(held, asked + lease());
        ApplyCancelRequest(*renewed);
        continue;
      }
      ReportError(renewed.status());
      if (JobStore::IsLeaseLost(renewed.status())) {
        // Another worker has the job: stop it here; its writes are refused from now on anyway.
        absl::MutexLock lock(&mu_);
        const auto found = running_.find(held.job_id);
        if (found != running_.end() && found->second->lease.token == held.token) {
          found->second->stop.Interrupt();
        }
        if (options_.on_lease_lost) options_.on_lease_lost(held.job_id);
      }
    }
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(this, &Scheduler::ShutdownFinished), interval);
  }
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
  // The heartbeat renewed the stopping jobs' leases until now; it ends with the last of them.
  std::thread heartbeat;
  {
    absl::MutexLock lock(&mu_);
    heartbeat = std::move(heartbeat_);
  }
  if (heartbeat.joinable()) heartbeat.join();
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
      // frees (ClaimNext does it otherwise).
      if (auto failed = store_->FailJobsWithDeadDependencies(); !failed.ok()) {
        ReportError(failed.status());
      }
      return;
    }
    const auto release = [this, &device] {
      if (Status s = pool_->Release(*device); !s.ok()) ReportError(s);
    };
    // Claim and registration under one lock, so Cancel and Shutdown see either a queued job or
    // a running one with its stop flag, never a started job without one.
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      release();
      return;
    }
    const absl::Time asked = absl::Now();
    StatusOr<std::optional<ClaimedJob>> claimed =
        store_->ClaimNext(options_.worker_id, *device, lease());
    if (!claimed.ok() || !claimed->has_value()) {
      release();
      if (!claimed.ok()) ReportError(claimed.status());
      return;
    }
    const std::string id = (*claimed)->job.id();
    if (const auto old = running_.find(id); old != running_.end()) {
      // Only a shutdown requeues a running job, and nothing starts after one: an entry left for
      // this id is a finished run not reaped yet, whose thread has ended or is about to.
      old->second->thread.join();
      running_.erase(old);
    }
    auto entry = std::make_unique<RunningJob>();
    entry->device = *device;
    entry->lease = (*claimed)->lease;
    if (lease() != absl::InfiniteDuration()) entry->stop.HoldLeaseUntil(asked + lease());
    RunningJob* const self = entry.get();
    running_[id] = std::move(entry);
    self->thread = std::thread(&Scheduler::Work, this, self, std::move((*claimed)->job));
  }
}

void Scheduler::Work(RunningJob* self, v1::Job job) {
  const RunOutcome outcome = runner_->Run(job, self->device, self->stop, self->lease);
  const Lease& lease = self->lease;
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
        moved = store_->Transition(lease, v1::JOB_STATE_SUCCEEDED);
        break;
      case RunOutcome::Kind::kFailed:
        moved = store_->Transition(lease, v1::JOB_STATE_FAILED, outcome.reason);
        break;
      case RunOutcome::Kind::kCancelled: {
        std::string reason = self->cancel_reason.empty() ? "cancelled" : self->cancel_reason;
        if (!outcome.reason.empty()) absl::StrAppend(&reason, " (", outcome.reason, ")");
        moved = store_->Transition(lease, v1::JOB_STATE_CANCELLED, reason);
        break;
      }
      case RunOutcome::Kind::kInterrupted:
        moved = store_->Transition(lease, v1::JOB_STATE_QUEUED,
                                   outcome.reason.empty() ? kShutdownReason : outcome.reason);
        terminal = false;
        break;
    }
  }
  // A lost lease: another worker resumed the job, whose results are its own now.
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

bool Scheduler::ShutdownFinished() const { return stopping_ && AllWorkersDone(); }

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
