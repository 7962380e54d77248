// Internal to the kernels library: helpers shared by quantize.cc (plain and 32-element block types)
// and quantize_k.cc (256-element super-block types). Not a public header.
#pragma once

#include <cstdint>
#include <cstring>

namespace enclave::kernels::quant_detail {

// Round to nearest, ties to even, for |v| < 2^22: adding 1.5 * 2^23 leaves the integer in the low
// mantissa bits. This is the rounding ggml's K-quant code uses, so it is reproduced exactly (not
// lrintf, which would depend on the current rounding mode).
inline int nearest_int(float v) {
  const float shifted = v + 12582912.0f;
  int32_t bits;
  std::memcpy(&bits, &shifted, sizeof(bits));
  return (bits & 0x007FFFFF) - 0x00400000;
}

// roundf() semantics (ties away from zero) for |v| < 2^23, without a libm call: v - trunc(v) is
// exact in that range.
inline int round_half_away(float v) {
  int i = static_cast<int>(v);
  const float frac = v - static_cast<float>(i);
  i += (frac >= 0.5f) - (frac <= -0.5f);
  return i;
}

// Super-block (256-element) types, implemented in quantize_k.cc. `n` is a multiple of 256.
void quantize_q2_k(const float* x, void* dst, int64_t n);
void quantize_q3_k(const float* x, void* dst, int64_t n);
void quantize_q4_k(const float* x, void* dst, int64_t n);
void quantize_q5_k(const float* x, void* dst, int64_t n);
void quantize_q6_k(const float* x, void* dst, int64_t n);
void quantize_q8_k(const float* x, void* dst, int64_t n);

void dequantize_q2_k(const void* src, float* y, int64_t n);
void dequantize_q3_k(const void* src, float* y, int64_t n);
void dequantize_q4_k(const void* src, float* y, int64_t n);
void dequantize_q5_k(const void* src, float* y, int64_t n);
void dequantize_q6_k(const void* src, float* y, int64_t n);
void dequantize_q8_k(const void* src, float* y, int64_t n);

}  // namespace enclave::kernels::quant_detail
