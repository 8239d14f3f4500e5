#include "server/api/call_tracker.h"

#include <utility>

#include "absl/strings/match.h"

namespace selene::api {

// Made when gRPC starts a call (before its handler runs) and destroyed with the call's context,
// once the call has ended: its life is the call's.
class CallTracker::Interceptor final : public grpc::experimental::Interceptor {
 public:
  explicit Interceptor(CallTracker* tracker) : tracker_(tracker) {
    absl::MutexLock lock(&tracker_->mu_);
    ++tracker_->in_flight_;
  }
  ~Interceptor() override {
    absl::MutexLock lock(&tracker_->mu_);
    --tracker_->in_flight_;
  }
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    methods->Proceed();
  }

 private:
  CallTracker* const tracker_;
};

class CallTracker::Factory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(CallTracker* tracker) : tracker_(tracker) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    for (const std::string& prefix : tracker_->ignored_prefixes_) {
      if (absl::StartsWith(info->method(), prefix)) return nullptr;  // gRPC allows none
    }
    return new Interceptor(tracker_);
  }

 private:
  CallTracker* const tracker_;
};

CallTracker::CallTracker(std::vector<std::string> ignored_prefixes)
    : ignored_prefixes_(std::move(ignored_prefixes)) {}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
CallTracker::InterceptorFactory() {
  return std::make_unique<Factory>(this);
}

int CallTracker::in_flight() const {
  absl::MutexLock lock(&mu_);
  return in_flight_;
}

bool CallTracker::AwaitIdle(absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  const auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return in_flight_ == 0; };
  return mu_.AwaitWithDeadline(absl::Condition(&idle), deadline);
}

}  // namespace selene::api
