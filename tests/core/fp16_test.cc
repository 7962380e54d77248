#include "core/fp16.h"

#include <gtest/gtest.h>
#include <immintrin.h>

#include <cmath>

#include "core/cpu_features.h"

namespace enclave {
namespace {

// Every one of the 65536 half values widens exactly and narrows back to itself (NaNs stay NaN).
TEST(Fp16, RoundTripsAllHalfValues) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = fp16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(fp16_to_f32(f32_to_fp16(f))));
      continue;
    }
    EXPECT_EQ(f32_to_fp16(f), h) << h;
  }
}

__attribute__((target("f16c"))) uint16_t hw_to_fp16(float f) {
  return static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
}
__attribute__((target("f16c"))) float hw_to_f32(uint16_t h) {
  return _cvtsh_ss(h);
}

// The software conversion agrees with the F16C instruction on a dense sweep of float bit patterns.
TEST(Fp16, MatchesF16cInstruction) {
  if (!cpu_features().f16c) GTEST_SKIP() << "no F16C on this CPU";
  for (uint64_t u = 0; u < (1ull << 32); u += 4093) {
    const float f = f32_from_bits(static_cast<uint32_t>(u));
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_fp16(f), hw_to_fp16(f)) << std::hex << u;
  }
  for (uint32_t h = 0; h < 65536; ++h) {
    const float a = fp16_to_f32(static_cast<uint16_t>(h));
    const float b = hw_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(a)) continue;
    ASSERT_EQ(f32_bits(a), f32_bits(b)) << h;
  }
}

TEST(Bf16, RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(bf16_to_f32(0x3F80), 1.0f);
  // 1 + 2^-8 is exactly halfway between two bf16 values: ties to even (down).
  EXPECT_EQ(f32_to_bf16(1.0f + 1.0f / 256), 0x3F80);
  EXPECT_EQ(f32_to_bf16(1.0f + 3.0f / 256), 0x3F82);
}

}  // namespace
}  // namespace enclave
