// The one place an Error becomes an HTTP status and an OpenAI-style error object
// {"error":{"message","type","param","code"}}. Every error response of the server goes through
// here.
#pragma once

#include <string>
#include <string_view>

#include "core/result.h"

namespace enclave::api {

struct ApiError {
  int status = 500;
  std::string type;       // "invalid_request_error", "authentication_error", ...
  std::string code;       // machine-readable code, e.g. "invalid_api_key"; empty -> null
  std::string param;      // offending request field, e.g. "messages[0].role"; empty -> null
  std::string message;    // human-readable; never internals or secrets
  int retry_after_s = 0;  // > 0: the server adds a Retry-After header (429, 503)
};

// Maps an error code to status/type/code. `param` names the request field at fault (may be empty).
// kInternal (and kIo, kCorruptData) hide the message: the client sees only the request id.
ApiError map_error(const Error& error, std::string_view param = {},
                   std::string_view request_id = {});

// Transport-level errors that have no ErrorCode of their own.
ApiError payload_too_large(size_t limit_bytes);
ApiError header_too_large();
ApiError route_not_found(std::string_view method, std::string_view path);
ApiError method_not_allowed(std::string_view method, std::string_view path);
ApiError request_timeout();

// Serializes to the OpenAI JSON error object.
std::string error_json(const ApiError& error);

}  // namespace enclave::api
