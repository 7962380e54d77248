// Error -> HTTP status / OpenAI error object mapping.
#include "api/error_mapper.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace enclave::api {
namespace {

TEST(ErrorMapper, StatusPerCode) {
  struct Case {
    ErrorCode code;
    int status;
    const char* type;
  } cases[] = {
      {ErrorCode::kInvalidArgument, 400, "invalid_request_error"},
      {ErrorCode::kUnsupported, 400, "invalid_request_error"},
      {ErrorCode::kOutOfRange, 400, "invalid_request_error"},
      {ErrorCode::kNotFound, 404, "invalid_request_error"},
      {ErrorCode::kUnauthenticated, 401, "authentication_error"},
      {ErrorCode::kPermissionDenied, 403, "permission_error"},
      {ErrorCode::kResourceExhausted, 429, "rate_limit_error"},
      {ErrorCode::kUnavailable, 503, "server_error"},
      {ErrorCode::kAlreadyExists, 409, "invalid_request_error"},
      {ErrorCode::kInternal, 500, "server_error"},
      {ErrorCode::kIo, 500, "server_error"},
      {ErrorCode::kCorruptData, 500, "server_error"},
  };
  for (const Case& c : cases) {
    ApiError e = map_error(Error(c.code, "m"));
    EXPECT_EQ(e.status, c.status) << error_code_name(c.code);
    EXPECT_EQ(e.type, c.type) << error_code_name(c.code);
  }
  EXPECT_EQ(map_error(Error(ErrorCode::kResourceExhausted, "q")).retry_after_s, 1);
  EXPECT_EQ(map_error(Error(ErrorCode::kNotFound, "x"), "model").code, "model_not_found");
  EXPECT_EQ(map_error(Error(ErrorCode::kOutOfRange, "x")).code, "context_length_exceeded");
  EXPECT_EQ(payload_too_large(10).status, 413);
  EXPECT_EQ(header_too_large().status, 431);
  EXPECT_EQ(route_not_found("GET", "/x").status, 404);
  EXPECT_EQ(method_not_allowed("GET", "/x").status, 405);
  EXPECT_EQ(request_timeout().status, 408);
}

TEST(ErrorMapper, InternalErrorsHideDetailsButCarryRequestId) {
  ApiError e = map_error(Error(ErrorCode::kInternal, "/secret/path failed at 0xdead"), "messages",
                         "req_123");
  EXPECT_EQ(e.status, 500);
  EXPECT_EQ(e.message.find("secret"), std::string::npos);
  EXPECT_NE(e.message.find("req_123"), std::string::npos);
  EXPECT_TRUE(e.param.empty());
}

TEST(ErrorMapper, JsonShape) {
  ApiError e = map_error(Error(ErrorCode::kInvalidArgument, "bad temp"), "temperature");
  boost::json::value v = boost::json::parse(error_json(e));
  const auto& err = v.at("error");
  EXPECT_EQ(err.at("message").as_string(), "bad temp");
  EXPECT_EQ(err.at("type").as_string(), "invalid_request_error");
  EXPECT_EQ(err.at("param").as_string(), "temperature");
  EXPECT_EQ(err.at("code").as_string(), "invalid_request");
  ApiError np = map_error(Error(ErrorCode::kUnauthenticated, "no"));
  boost::json::value w = boost::json::parse(error_json(np));
  EXPECT_TRUE(w.at("error").at("param").is_null());
}

}  // namespace
}  // namespace enclave::api
