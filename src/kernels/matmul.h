// Matrix products of a (quantized) weight matrix with F32 activations: y = W x.
// W has `rows` rows of `cols` elements (GGUF ne = {cols, rows}); x is [n_tokens][cols] row-major;
// y is [n_tokens][rows] row-major. Activations are quantized once per token row; weights are
// streamed once per tile; work is split over output rows across the pool.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "core/dtype.h"
#include "kernels/thread_pool.h"

namespace enclave::kernels {

// How a weight matrix's bytes are arranged: as in the GGUF file (row after row), or rows16
// (16-row groups interleaved for decode, see repack.h). Either way rows * row_bytes bytes.
enum class WeightLayout : uint8_t { kGguf, kRows16 };

struct WeightMatrix {
  DType type = DType::kF32;
  const void* data = nullptr;  // rows * row_bytes bytes (e.g. straight from the mmap)
  int64_t cols = 0;            // ne[0]
  int64_t rows = 0;            // ne[1]
  size_t row_bytes = 0;
  WeightLayout layout = WeightLayout::kGguf;
};

// Which kernels a product may use. The AVX-512 / AVX2 / scalar kernels give every (row, token)
// the bits of the matrix-vector product whatever the batch; the AMX prompt kernels round
// differently. kDecode keeps every token on the former, so a generated token's logits never depend
// on what else shares its batch. kPrompt sends every token to AMX where the CPU has it, so a
// prompt's bits never depend on how it was chunked or co-batched. kAuto (tools, benchmarks) picks
// by batch size.
enum class MatmulMode { kAuto, kDecode, kPrompt };

// Scratch big enough for quantized activations of n_tokens rows (callers may reuse it).
size_t matmul_scratch_bytes(const WeightMatrix& w, int64_t n_tokens);

// y[t][r] = sum_c W[r][c] * x[t][c]. n_tokens == 1 uses the matrix-vector path.
// `scratch` must hold matmul_scratch_bytes(w, n_tokens) bytes, or be null (then allocated).
void matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool,
            void* scratch = nullptr, MatmulMode mode = MatmulMode::kAuto);

// Products of several matrices with one input (the Q/K/V projections, the FFN gate and up):
// ys[i][t][r] = sum_c ws[i][r][c] * x[t][c]. Where the weights stream (up to 4 tokens on the
// AVX-512 kernels, 1 otherwise) and the matrices share type and cols, the input is quantized once
// and one pass of the pool covers all their rows (fewer barriers, one long stream); otherwise
// one matmul() each. Each output has exactly the bits matmul() gives it. `scratch` as for any
// one of the matrices.
void matmul_many(std::span<const WeightMatrix* const> ws, const float* x, int64_t n_tokens,
                 std::span<float* const> ys, ThreadPool& pool, void* scratch = nullptr,
                 MatmulMode mode = MatmulMode::kAuto);

// Reference: dequantize each row and accumulate in double (tests only; slow).
void matmul_reference(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y);

}  // namespace enclave::kernels
