// Internal to the kernels library: helpers shared by quantize.cc (plain and 32-element block types)
// and quantize_k.cc (256-element super-block types). Not a public header.
#pragma once

#include <cmath>
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

constexpr float kGroupMaxEps = 1e-15f;  // below this a group counts as all zero

inline int clamp_int(int v, int lo, int hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

// Element with the largest magnitude (first on ties), sign kept; *amax_out gets its magnitude.
inline float signed_absmax(const float* x, int n, float* amax_out) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
    if (a > amax) {
      amax = a;
      max = x[i];
    }
  }
  *amax_out = amax;
  return max;
}

// ---- Scale searches (quantize_fit.cc) ----
// Each *_x8 variant runs the scalar algorithm on 8 independent groups at once, one per vector
// lane, with every lane doing exactly the scalar operations in the scalar order: results are
// bit-identical to 8 scalar calls (tests compare them). Group g of x/w starts at x + g * n; L is
// laid out the same way (n levels per group).

// Asymmetric fit x ~ scale * L + min (L in [0, nmax], min <= 0) minimizing a weighted error
// (absolute or squared), ggml's make_qkx2_quants. Returns the scale, stores -min in *neg_min.
float fit_scale_min(int n, int nmax, const float* x, const float* w, uint8_t* L, float* neg_min,
                    float rmin, float rdelta, int nstep, bool abs_error);
void fit_scale_min_x8(int n, int nmax, const float* x, const float* w, uint8_t* L, float* scales,
                      float* neg_mins, float rmin, float rdelta, int nstep, bool abs_error);
// Symmetric fit with x^2 weights and 18 alternative grids (make_qx_quants, rmse_type 1).
// L receives level + nmax. n <= 32.
float fit_symmetric(int n, int nmax, const float* x, int8_t* L);
void fit_symmetric_x8(int n, int nmax, const float* x, int8_t* L, float* scales);
// Symmetric fit refined by coordinate descent (make_q3_quants with rmse).
float fit_q3(int n, int nmax, const float* x, int8_t* L);

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
