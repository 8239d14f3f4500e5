// Names a request body that is not the method's message. gRPC 1.51's callback API parses the
// request before the handler runs and, when that fails, answers UNIMPLEMENTED with no message (the
// parse status is dropped in CallbackUnaryHandler::RunHandler and its server-streaming twin), so a
// client sending bytes of another message, or none at all, cannot tell what was wrong. Interceptors
// do see it: the received message is null after POST_RECV_MESSAGE. This one turns that call's
// status into INVALID_ARGUMENT "request body is not a valid selene.v1.SegmentRequest".
#pragma once

#include <memory>

#include <grpcpp/support/server_interceptor.h>

namespace selene::api {

// Register it first, so the interceptors after it (metrics) see the corrected status.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeRequestBodyInterceptorFactory();

}  // namespace selene::api
