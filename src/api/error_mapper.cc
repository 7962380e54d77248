// Error -> HTTP status + OpenAI error object.
#include "api/error_mapper.h"

#include <boost/json.hpp>

namespace enclave::api {
namespace {

ApiError make(int status, std::string type, std::string code, std::string_view param,
              std::string message) {
  ApiError e;
  e.status = status;
  e.type = std::move(type);
  e.code = std::move(code);
  e.param = std::string(param);
  e.message = std::move(message);
  return e;
}

}  // namespace

ApiError map_error(const Error& error, std::string_view param, std::string_view request_id) {
  switch (error.code) {
    case ErrorCode::kInvalidArgument:
      return make(400, "invalid_request_error", "invalid_request", param, error.message);
    case ErrorCode::kUnsupported:
      return make(400, "invalid_request_error", "unsupported", param, error.message);
    case ErrorCode::kOutOfRange:
      return make(400, "invalid_request_error", "context_length_exceeded", param, error.message);
    case ErrorCode::kNotFound:
      return make(404, "invalid_request_error", param == "model" ? "model_not_found" : "not_found",
                  param, error.message);
    case ErrorCode::kUnauthenticated:
      return make(401, "authentication_error", "invalid_api_key", param, error.message);
    case ErrorCode::kPermissionDenied:
      return make(403, "permission_error", "insufficient_permissions", param, error.message);
    case ErrorCode::kResourceExhausted: {
      ApiError e = make(429, "rate_limit_error", "rate_limit_exceeded", param, error.message);
      e.retry_after_s = 1;
      return e;
    }
    case ErrorCode::kUnavailable: {
      ApiError e = make(503, "server_error", "service_unavailable", param, error.message);
      e.retry_after_s = 5;
      return e;
    }
    case ErrorCode::kAlreadyExists:
      return make(409, "invalid_request_error", "conflict", param, error.message);
    case ErrorCode::kCorruptData:
    case ErrorCode::kIo:
    case ErrorCode::kInternal:
      break;
  }
  std::string msg = "The server had an internal error while processing your request.";
  if (!request_id.empty()) {
    msg += " Quote request id " + std::string(request_id) + " when reporting it.";
  }
  return make(500, "server_error", "internal_error", {}, std::move(msg));
}

ApiError payload_too_large(size_t limit_bytes) {
  return make(413, "invalid_request_error", "request_too_large", {},
              "Request body is larger than the server limit of " + std::to_string(limit_bytes) +
                  " bytes; send a smaller request or raise max_body_bytes in the server config.");
}

ApiError header_too_large() {
  return make(431, "invalid_request_error", "headers_too_large", {},
              "Request headers are larger than the server limit.");
}

ApiError route_not_found(std::string_view method, std::string_view path) {
  return make(404, "invalid_request_error", "unknown_url", {},
              "Unknown request URL: " + std::string(method) + " " + std::string(path) +
                  ". See GET /v1/models and POST /v1/chat/completions.");
}

ApiError method_not_allowed(std::string_view method, std::string_view path) {
  return make(405, "invalid_request_error", "method_not_allowed", {},
              "Method " + std::string(method) + " is not allowed for " + std::string(path) + ".");
}

ApiError request_timeout() {
  return make(408, "invalid_request_error", "request_timeout", {},
              "The request took longer than the server's request time limit.");
}

std::string error_json(const ApiError& error) {
  boost::json::object inner;
  inner["message"] = error.message;
  inner["type"] = error.type;
  inner["param"] =
      error.param.empty() ? boost::json::value(nullptr) : boost::json::value(error.param);
  inner["code"] = error.code.empty() ? boost::json::value(nullptr) : boost::json::value(error.code);
  boost::json::object outer;
  outer["error"] = std::move(inner);
  return boost::json::serialize(outer);
}

}  // namespace enclave::api
