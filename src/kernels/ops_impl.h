// Internal to the kernels library: SIMD entry points of ops.cc (nullptr-free; call only when the
// level is available).
#pragma once

#include <cstdint>

namespace enclave::kernels::detail {

void rms_norm_avx512(const float* x, const float* weight, float* y, int64_t n, float eps);
void softmax_avx512(float* x, int64_t n);
void silu_avx512(const float* x, float* y, int64_t n);
void swiglu_avx512(const float* gate, const float* up, float* y, int64_t n);

}  // namespace enclave::kernels::detail
