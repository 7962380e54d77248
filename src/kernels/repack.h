// Row-interleaved weight layout for decode ("rows16"), for Q4_0, Q8_0, Q4_K and Q6_K. In the GGUF
// layout each row is a run of blocks; a matrix-vector kernel must permute every block's bytes
// into lanes, convert one scale per block and row, and reduce each row horizontally at the end.
// In rows16 the rows are taken 16 at a time and each GGUF block is split in two:
//   its per-row scale field (the "tail": d, or d and dmin for Q4_K), gathered at the end of the
//       group, 16 tails per block, so that 16 scales load and convert as one vector;
//   the rest, interleaved: vector k (64 bytes) of a block holds bytes 4k..4k+3 of those bytes for
//       rows 0..15 (lane r = row r). Q8_0's int8 quants are stored XOR 0x80 (excess-128), the
//       unsigned operand vpdpbusd needs.
// E.g. Q4_0: per 32-element block 4 x 64 bytes of quants (low nibbles = elements 4k..4k+3, high
// nibbles = elements 16+4k.. of every row); a 16-row group of nb blocks is [quants of block 0 ..
// nb-1 : nb * 256 bytes][scales : nb * 32 bytes]. A group is exactly the bytes its 16 rows took,
// so a matrix is repacked in place with no extra memory. One vpdpbusd then advances 16 rows and
// every lane is one row's sum (no horizontal reduction): about half the uops per weight byte of
// the GGUF kernels, which is what decode (memory-bound, sharing the core's load slots with the
// prefetch traffic) needs.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "kernels/matmul.h"

namespace enclave::kernels {

inline constexpr int64_t kRows16 = 16;

// Whether a `rows` x `cols` matrix of `type` can be stored as rows16 (Q4_0, Q8_0, Q4_K or Q6_K;
// rows a multiple of 16, cols a multiple of the block size).
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
