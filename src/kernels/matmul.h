// Matrix products of a (quantized) weight matrix with F32 activations: y = W x.
// W has `rows` rows of `cols` elements (GGUF ne = {cols, rows}); x is [n_tokens][cols] row-major;
// y is [n_tokens][rows] row-major. Activations are quantized once per token row; weights are
// streamed once per tile; work is split over output rows across the pool.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "kernels/thread_pool.h"

namespace enclave::kernels {

struct WeightMatrix {
  DType type = DType::kF32;
  const void* data = nullptr;  // rows * row_bytes bytes (e.g. straight from the mmap)
  int64_t cols = 0;            // ne[0]
  int64_t rows = 0;            // ne[1]
  size_t row_bytes = 0;
};

// Scratch big enough for quantized activations of n_tokens rows (callers may reuse it).
size_t matmul_scratch_bytes(const WeightMatrix& w, int64_t n_tokens);

// y[t][r] = sum_c W[r][c] * x[t][c]. n_tokens == 1 uses the matrix-vector path.
// `scratch` must hold matmul_scratch_bytes(w, n_tokens) bytes, or be null (then allocated).
void matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool,
            void* scratch = nullptr);

// Reference: dequantize each row and accumulate in double (tests only; slow).
void matmul_reference(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y);

}  // namespace enclave::kernels
