#include "core/result.h"

#include <gtest/gtest.h>

namespace enclave {
namespace {

Result<int> parse_positive(int x) {
  if (x <= 0) return Error(ErrorCode::kInvalidArgument, "x must be positive");
  return x;
}

Result<int> doubled(int x) {
  ENCLAVE_ASSIGN_OR_RETURN(int v, parse_positive(x));
  return v * 2;
}

TEST(Result, CarriesValueOrError) {
  auto ok = parse_positive(3);
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, 3);
  auto bad = parse_positive(-1);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
}

TEST(Result, AssignOrReturnPropagates) {
  EXPECT_EQ(*doubled(4), 8);
  auto bad = doubled(0);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, "x must be positive");
}

TEST(Status, OkAndError) {
  Status ok;
  EXPECT_TRUE(ok.is_ok());
  Status bad = Error(ErrorCode::kIo, "disk");
  EXPECT_FALSE(bad.is_ok());
  EXPECT_STREQ(error_code_name(bad.error().code), "io_error");
}

}  // namespace
}  // namespace enclave
