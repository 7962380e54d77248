// Row-interleaved weight layout for decode ("rows16"). In the GGUF layout each row is a run of
// 18-byte Q4_0 blocks; a matrix-vector kernel must permute every block's bytes into lanes and
// reduce each row horizontally at the end. In rows16 the rows are taken 16 at a time and, per
// 32-element block, stored as
//   qs: 4 x 64 bytes, vector k holding bytes 4k..4k+3 of the block's 16 quant bytes for rows
//       0..15 (lane r = row r), so the low nibbles are elements 4k..4k+3 and the high nibbles
//       elements 16+4k..16+4k+3 of every row;
//   d:  16 f16 scales, one per row.
// A 16-row group of nb blocks is [qs of block 0 .. nb-1 : nb * 256 bytes][d : nb * 32 bytes],
// exactly the 16 * nb * 18 bytes the rows took, so a matrix is repacked in place with no extra
// memory. One vpdpbusd then advances 16 rows, every lane is one row's sum (no horizontal
// reduction) and scales convert 16 at a time: about half the uops per weight byte of the GGUF
// kernel, which is what decode (memory-bound, sharing the core's load slots with the prefetch
// traffic) needs.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "kernels/matmul.h"

namespace enclave::kernels {

inline constexpr int64_t kRows16 = 16;

// Whether a `rows` x `cols` matrix of `type` can be stored as rows16 (Q4_0, rows a multiple of
// 16, cols a multiple of 32).
bool rows16_supported(DType type, int64_t rows, int64_t cols);

// Whether this CPU should use rows16 for such a matrix: supported and the AVX-512 VNNI kernel is
// available (elsewhere only the scalar reference reads the layout).
bool rows16_preferred(DType type, int64_t rows, int64_t cols);

// dst = the GGUF-layout matrix src in rows16 (same byte size). src and dst must not overlap.
// Requires rows16_supported.
void repack_rows16(DType type, const void* src, void* dst, int64_t rows, int64_t cols);

// The inverse: dst = the rows16 matrix src in the GGUF layout.
void unpack_rows16(DType type, const void* src, void* dst, int64_t rows, int64_t cols);

// Repacks `rows` x `cols` in place, 16 rows at a time through a small buffer.
void repack_rows16_in_place(DType type, void* data, int64_t rows, int64_t cols);

// The GGUF-layout bytes of row `row` of a rows16 matrix (row_bytes bytes into `dst`).
void rows16_read_row(DType type, const void* data, int64_t cols, int64_t row, void* dst);

}  // namespace enclave::kernels
