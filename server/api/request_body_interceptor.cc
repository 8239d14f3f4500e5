#include "server/api/request_body_interceptor.h"

#include <string>

#include <google/protobuf/descriptor.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"

namespace selene::api {
namespace {

using grpc::experimental::InterceptionHookPoints;

// "/selene.v1.InferenceService/Segment" -> "selene.v1.SegmentRequest", from the generated
// descriptors every service linked in registers; the path itself when it names no known method.
std::string RequestTypeName(const std::string& path) {
  const std::string method = absl::StrReplaceAll(absl::StripPrefix(path, "/"), {{"/", "."}});
  const google::protobuf::MethodDescriptor* descriptor =
      google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(method);
  if (descriptor == nullptr) return absl::StrCat("request message of ", path);
  return descriptor->input_type()->full_name();
}

class RequestBodyInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit RequestBodyInterceptor(grpc::experimental::ServerRpcInfo* info)
      : method_(info->method()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    // The server reports POST_RECV_MESSAGE for the request of a unary or server-streaming call
    // only when bytes came; a null message there means they did not parse.
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        methods->GetRecvMessage() == nullptr) {
      unparsed_ = true;
    }
    if (unparsed_ && methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      // What gRPC answers a request it could not parse (see the header); anything else is the
      // handler's own answer and stays.
      if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED &&
          status.error_message().empty()) {
        methods->ModifySendStatus(
            grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                         absl::StrCat("request body is not a valid ", RequestTypeName(method_))));
      }
    }
    methods->Proceed();
  }

 private:
  const std::string method_;
  bool unparsed_ = false;  // hook points of one call come one at a time
};

class RequestBodyInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RequestBodyInterceptor(info);
  }
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeRequestBodyInterceptorFactory() {
  return std::make_unique<RequestBodyInterceptorFactory>();
}

}  // namespace selene::api
