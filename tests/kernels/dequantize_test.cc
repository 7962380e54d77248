// Dequantization: bit-exact against ggml's own output for every fixture tensor, plus hand-built
// blocks for the activation types (Q8_1, Q8_K) that have no fixture file.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/fp16.h"
#include "gguf/gguf_file.h"
#include "kernels/quant_blocks.h"
#include "kernels/quantize.h"
#include "quant_test_util.h"

namespace enclave::kernels {
namespace {

using testing::fixture_types;
using testing::quant_fixture;

class DequantizeGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(DequantizeGolden, BitExactWithGgml) {
  const std::string type_name = GetParam();
  auto quantized = gguf::GgufFile::open(quant_fixture(type_name + ".gguf"));
  ASSERT_TRUE(quantized.has_value()) << quantized.error().message;
  auto reference = gguf::GgufFile::open(quant_fixture(type_name + ".deq.gguf"));
  ASSERT_TRUE(reference.has_value()) << reference.error().message;
  const auto expected_type = dtype_from_name(type_name);
  ASSERT_TRUE(expected_type.has_value());
  ASSERT_EQ(quantized->tensors().size(), 4u);

  for (const auto& t : quantized->tensors()) {
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.type, *expected_type);
    ASSERT_TRUE(can_dequantize(t.type));
    const gguf::TensorInfo* ref = reference->tensor(t.name);
    ASSERT_NE(ref, nullptr);
    ASSERT_EQ(ref->type, DType::kF32);
    ASSERT_EQ(ref->ne, t.ne);

    const std::vector<float> got = testing::tensor_to_f32(t);
    ASSERT_EQ(got.size(), ref->n_elements());
    size_t mismatches = 0;
    size_t first = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      uint32_t want;
      std::memcpy(&want, ref->data + 4 * i, 4);
      if (f32_bits(got[i]) != want) {
        if (mismatches == 0) first = i;
        ++mismatches;
      }
    }
    EXPECT_EQ(mismatches, 0u) << "first mismatch at element " << first << " (row "
                              << first / t.ne[0] << ")";
  }
}

INSTANTIATE_TEST_SUITE_P(AllFixtureTypes, DequantizeGolden, ::testing::ValuesIn(fixture_types()),
                         testing::type_param_name);

TEST(Dequantize, CanDequantizeCoversEveryStorageType) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ4_0, DType::kQ4_1, DType::kQ5_0,
                  DType::kQ5_1, DType::kQ8_0, DType::kQ8_1, DType::kQ2_K, DType::kQ3_K,
                  DType::kQ4_K, DType::kQ5_K, DType::kQ6_K, DType::kQ8_K}) {
    EXPECT_TRUE(can_dequantize(t)) << dtype_name(t);
    EXPECT_TRUE(can_quantize(t)) << dtype_name(t);
  }
  EXPECT_FALSE(can_dequantize(DType::kI32));
  EXPECT_FALSE(can_quantize(DType::kF64));
}

TEST(Dequantize, Q8_1HandBuiltBlock) {
  BlockQ8_1 b{};
  b.d = f32_to_fp16(0.5f);
  b.s = f32_to_fp16(123.0f);  // not used by dequantization
  for (int i = 0; i < kQK8_1; ++i) b.qs[i] = static_cast<int8_t>(i - 16);
  float y[kQK8_1];
  dequantize_row(DType::kQ8_1, &b, y, kQK8_1);
  for (int i = 0; i < kQK8_1; ++i) EXPECT_EQ(y[i], 0.5f * static_cast<float>(i - 16)) << i;
}

TEST(Dequantize, Q8_KHandBuiltBlocks) {
  BlockQ8_K b[2]{};
  b[0].d = 0.25f;
  b[1].d = -3.0f;
  for (int i = 0; i < kQK_K; ++i) {
    b[0].qs[i] = static_cast<int8_t>((i % 255) - 127);
    b[1].qs[i] = static_cast<int8_t>(i % 7);
  }
  std::vector<float> y(2 * kQK_K);
  dequantize_row(DType::kQ8_K, b, y.data(), 2 * kQK_K);
  for (int i = 0; i < kQK_K; ++i) {
    EXPECT_EQ(y[i], 0.25f * static_cast<float>((i % 255) - 127)) << i;
    EXPECT_EQ(y[kQK_K + i], -3.0f * static_cast<float>(i % 7)) << i;
  }
}

TEST(Dequantize, Q4_0HandBuiltBlockUsesLowThenHighNibbles) {
  BlockQ4_0 b{};
  b.d = f32_to_fp16(2.0f);
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>((j & 0xF) | ((15 - j) << 4));
  float y[32];
  dequantize_row(DType::kQ4_0, &b, y, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 2.0f * static_cast<float>(j - 8));
    EXPECT_EQ(y[j + 16], 2.0f * static_cast<float>(7 - j));
  }
}

TEST(Dequantize, F32IsACopyAndF16WidensExactly) {
  const float src[4] = {1.5f, -0.0f, 65504.0f, 1e-7f};
  float out[4];
  dequantize_row(DType::kF32, src, out, 4);
  EXPECT_EQ(0, std::memcmp(src, out, sizeof(src)));
  const uint16_t h[3] = {0x3C00, 0x0001, 0xFC00};  // 1, smallest subnormal, -inf
  dequantize_row(DType::kF16, h, out, 3);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], 5.9604644775390625e-08f);
  EXPECT_TRUE(std::isinf(out[2]) && out[2] < 0);
}

}  // namespace
}  // namespace enclave::kernels
