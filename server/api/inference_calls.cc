#include "server/api/inference_calls.h"

namespace selene::api {

InferenceCalls::InferenceCalls(const TokenAuth* auth, ServerMetrics* metrics,
                               InferenceCallsOptions options)
    : auth_(auth), metrics_(metrics), workers_("inference", options.workers, options.max_pending) {}

InferenceCalls::~InferenceCalls() { Shutdown(); }

void InferenceCalls::StartDraining() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
}

bool InferenceCalls::draining() const {
  absl::MutexLock lock(&mu_);
  return draining_;
}

int InferenceCalls::in_flight() const {
  absl::MutexLock lock(&mu_);
  return in_flight_;
}

bool InferenceCalls::AwaitInFlight(int n, absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  const auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return in_flight_ == n; };
  return mu_.AwaitWithDeadline(absl::Condition(&reached), deadline);
}

void InferenceCalls::Shutdown() {
  StartDraining();
  workers_.Shutdown();
}

Status InferenceCalls::Admit() {
  absl::MutexLock lock(&mu_);
  // A client whose request was still arriving when the drain began lands here too: UNAVAILABLE
  // tells it to retry elsewhere, where gRPC itself would cancel the call once the listener shuts.
  if (draining_) return absl::UnavailableError("selene-server is shutting down");
  ++in_flight_;
  return OkStatus();
}

void InferenceCalls::Release() {
  absl::MutexLock lock(&mu_);
  --in_flight_;
}

absl::Time InferenceCalls::DeadlineOf(const grpc::CallbackServerContext& context) {
  // The batcher drops a request whose client gave up waiting.
  const std::chrono::system_clock::time_point deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

}  // namespace selene::api
