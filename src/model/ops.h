// Small vector operations of the forward pass (private to the model library). Each has a scalar
// path and an AVX2/FMA/F16C path chosen at run time from cpu_features().
#pragma once

#include <cstdint>

namespace enclave::model::detail {

// out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i]; `out` may alias `x`.
void rms_norm(const float* x, const float* w, float* out, int64_t n, float eps);

// In place: x = silu(x) * y.
void silu_mul(float* x, const float* y, int64_t n);

// In place: x[i] += y[i].
void add_inplace(float* x, const float* y, int64_t n);

// sum_i a[i] * b[i] (f32 accumulate).
float dot_f32(const float* a, const float* b, int64_t n);

// y[i] += a * x[i].
void axpy_f32(float a, const float* x, float* y, int64_t n);

// Widening of n binary16 values.
void f16_to_f32_row(const uint16_t* src, float* dst, int64_t n);
// Round-to-nearest-even narrowing of n floats.
void f32_to_f16_row(const float* src, uint16_t* dst, int64_t n);

// In place softmax over n values (max-subtracted, f32); returns nothing, n >= 1.
void softmax_inplace(float* x, int64_t n);

}  // namespace enclave::model::detail
