// Fused dot products of one quantized weight row with a quantized activation row, the pairing of
// the GGUF reference (Q4_0/Q5_0/Q8_0 x Q8_0, Q4_1/Q5_1 x Q8_1, K-quants x Q8_K, F16 x F16,
// BF16 x BF16, F32 x F32). Every kernel has a scalar reference; AVX2 and AVX-512 (VNNI/BF16)
// variants are chosen at run time from cpu_features().
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace enclave::kernels {

enum class SimdLevel { kScalar, kAvx2, kAvx512 };
// The best level this CPU supports (respects ENCLAVE_CPU).
SimdLevel best_simd_level();
const char* simd_level_name(SimdLevel level);

// Activation type a weight type is multiplied with.
DType activation_type(DType weight_type);

// Quantizes `n` floats into the activation type's blocks (dtype_row_bytes(act, n) bytes).
void quantize_activation(DType act_type, const float* x, void* dst, int64_t n);
void quantize_activation(DType act_type, const float* x, void* dst, int64_t n, SimdLevel level);

// sum_i w[i] * a[i] over `n` elements; `w` is a weight row of `weight_type`, `a` the activation
// row already in activation_type(weight_type).
float vec_dot(DType weight_type, const void* w, const void* a, int64_t n);
float vec_dot(DType weight_type, const void* w, const void* a, int64_t n, SimdLevel level);

// Function-pointer form for hot loops: resolve once, call per row.
using VecDotFn = float (*)(const void* w, const void* a, int64_t n);
VecDotFn vec_dot_fn(DType weight_type, SimdLevel level);

}  // namespace enclave::kernels
