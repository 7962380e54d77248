// Row conversion between F32 and every supported storage type (scalar reference; bit-exact
// dequantization as ggml's dequantize_row_*; quantization follows ggml's reference algorithms,
// including the K-quant scale search).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace enclave::kernels {

// True for the types this module can dequantize / quantize.
bool can_dequantize(DType type);
bool can_quantize(DType type);

// Dequantizes `n` elements (a multiple of the block size) from `src` into `dst`.
void dequantize_row(DType type, const void* src, float* dst, int64_t n);

// Quantizes `n` elements of `src` into `dst` (dtype_row_bytes(type, n) bytes). Returns bytes
// written.
size_t quantize_row(DType type, const float* src, void* dst, int64_t n);

}  // namespace enclave::kernels
