#include "core/dtype.h"

#include <gtest/gtest.h>

namespace enclave {
namespace {

TEST(DType, BlockSizesMatchGgml) {
  EXPECT_EQ(dtype_traits(DType::kQ4_K).block_bytes, 144u);
  EXPECT_EQ(dtype_traits(DType::kQ6_K).block_bytes, 210u);
  EXPECT_EQ(dtype_traits(DType::kQ8_K).block_bytes, 292u);
  EXPECT_EQ(dtype_row_bytes(DType::kQ4_0, 64), 36u);
  EXPECT_FALSE(dtype_traits(4u).has_value());  // removed Q4_2
}

TEST(DType, ParsesNames) {
  EXPECT_EQ(dtype_from_name("Q4_K"), DType::kQ4_K);
  EXPECT_EQ(dtype_from_name("bf16"), DType::kBF16);
  EXPECT_FALSE(dtype_from_name("Q9_9").has_value());
}

}  // namespace
}  // namespace enclave
