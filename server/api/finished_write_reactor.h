// A server-streaming reply that ends at once with a status: what a streaming method returns when
// it refuses a call (bad token, unknown job) before sending anything.
#pragma once

#include <grpcpp/support/server_callback.h>
#include <grpcpp/support/status.h>

namespace selene::api {

template <typename Response>
class FinishedWriteReactor final : public grpc::ServerWriteReactor<Response> {
 public:
  explicit FinishedWriteReactor(grpc::Status status) { this->Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

}  // namespace selene::api
