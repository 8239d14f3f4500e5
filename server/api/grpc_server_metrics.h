// gRPC server metrics in the convention Prometheus users know from go-grpc-prometheus:
// grpc_server_started_total, grpc_server_handled_total{grpc_type, grpc_service, grpc_method,
// grpc_code} and the grpc_server_handling_seconds histogram, recorded by a server interceptor for
// every call (Selene's services, health checking and reflection alike).
#pragma once

#include <memory>

#include <grpcpp/support/server_interceptor.h>

#include "server/metrics/registry.h"

namespace selene::api {

// Registers the three families on `registry` (which must outlive the gRPC server) and returns
// the factory to give ServerBuilder::experimental().SetInterceptorCreators.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeGrpcMetricsInterceptorFactory(metrics::Registry* registry);

}  // namespace selene::api
