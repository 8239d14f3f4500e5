#include "server/api/grpc_server_metrics.h"

#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/api/grpc_status.h"

namespace selene::api {
namespace {

using grpc::experimental::InterceptionHookPoints;
using grpc::experimental::ServerRpcInfo;

struct GrpcFamilies {
  metrics::Family<metrics::Counter>* started;
  metrics::Family<metrics::Counter>* handled;
  metrics::Family<metrics::Histogram>* handling_seconds;
};

const char* TypeLabel(ServerRpcInfo::Type type) {
  switch (type) {
    case ServerRpcInfo::Type::UNARY:
      return "unary";
    case ServerRpcInfo::Type::CLIENT_STREAMING:
      return "client_stream";
    case ServerRpcInfo::Type::SERVER_STREAMING:
      return "server_stream";
    case ServerRpcInfo::Type::BIDI_STREAMING:
      return "bidi_stream";
  }
  return "unknown";
}

// One per call: counts it started when made, handled with its code when the status goes out.
class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(const GrpcFamilies& families, ServerRpcInfo* info)
      : families_(families), started_(absl::Now()) {
    // "/selene.v1.TrainingService/SubmitJob" -> type, service, method.
    const std::vector<std::string> parts = absl::StrSplit(info->method(), absl::MaxSplits('/', 2));
    labels_ = {TypeLabel(info->type()), parts.size() == 3 ? parts[1] : info->method(),
               parts.size() == 3 ? parts[2] : ""};
    families_.started->WithLabels(labels_).Increment();
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      std::vector<std::string> with_code = labels_;
      with_code.push_back(GrpcCodeName(methods->GetSendStatus().error_code()));
      families_.handled->WithLabels(with_code).Increment();
      families_.handling_seconds->WithLabels(labels_).Observe(
          absl::ToDoubleSeconds(absl::Now() - started_));
    }
    methods->Proceed();
  }

 private:
  const GrpcFamilies families_;
  const absl::Time started_;
  std::vector<std::string> labels_;  // grpc_type, grpc_service, grpc_method
};

class MetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(const GrpcFamilies& families) : families_(families) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(ServerRpcInfo* info) override {
    return new MetricsInterceptor(families_, info);
  }

 private:
  const GrpcFamilies families_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeGrpcMetricsInterceptorFactory(metrics::Registry* registry) {
  const std::vector<std::string> call = {"grpc_type", "grpc_service", "grpc_method"};
  std::vector<std::string> call_and_code = call;
  call_and_code.push_back("grpc_code");
  GrpcFamilies families;
  families.started =
      &registry->AddCounter("grpc_server_started_total", "RPCs started on the server.", call);
  families.handled = &registry->AddCounter(
      "grpc_server_handled_total", "RPCs completed on the server, by status code.", call_and_code);
  families.handling_seconds = &registry->AddHistogram(
      "grpc_server_handling_seconds",
      "Time from an RPC's start until the server sent its status (streams: their whole life).",
      call, metrics::ExponentialBuckets(0.0005, 4, 10));  // 0.5 ms .. 131 s
  return std::make_unique<MetricsInterceptorFactory>(families);
}

}  // namespace selene::api
