// Counts the calls the gRPC server is working on, through a server interceptor that exists from
// a call's start (its request received) to its end (status sent), so a graceful stop can wait
// for exactly those before closing the listener. gRPC's own Server::Shutdown(deadline) waits for
// every call, and so also for streams that carry no work and end only when their client leaves:
// grpc.health.v1 Watch (in gRPC 1.51 neither SetServingStatus nor the health service's Shutdown
// ends one) and reflection streams. Those are left out here, and the stop cuts them once the
// work is done instead of waiting out the whole grace period.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/support/server_interceptor.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace selene::api {

class CallTracker {
 public:
  // Calls to methods whose path ("/package.Service/Method") starts with one of
  // `ignored_prefixes` are not counted.
  explicit CallTracker(std::vector<std::string> ignored_prefixes);
  CallTracker(const CallTracker&) = delete;
  CallTracker& operator=(const CallTracker&) = delete;

  // For ServerBuilder::experimental().SetInterceptorCreators; the tracker must outlive the
  // server it is given to.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> InterceptorFactory();

  // Counted calls started and not yet ended.
  int in_flight() const ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until no counted call is in flight; false if `deadline` passes first.
  bool AwaitIdle(absl::Time deadline) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  class Interceptor;
  class Factory;

  const std::vector<std::string> ignored_prefixes_;
  mutable absl::Mutex mu_;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace selene::api
