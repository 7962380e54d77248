// Internal to the kernels library: per-ISA kernel lookup and the scalar block helpers that the
// scalar reference, the SIMD files and matmul share. Not a public header.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "kernels/quant_blocks.h"
#include "kernels/vec_dot.h"

namespace enclave::kernels::detail {

using QuantizeActFn = void (*)(const float* x, void* dst, int64_t n);

// Each returns nullptr when the level has no kernel of its own for the type (the dispatcher then
// falls back to the next lower level; scalar covers everything).
VecDotFn scalar_vec_dot(DType weight_type);
VecDotFn avx2_vec_dot(DType weight_type);
VecDotFn avx512_vec_dot(DType weight_type);
QuantizeActFn scalar_quantize(DType act_type);
QuantizeActFn avx2_quantize(DType act_type);
QuantizeActFn avx512_quantize(DType act_type);

// AVX-512 row-block x token-block kernels (matmul_avx512.cc) on the GGUF weight layout. The
// activation row (already in activation_type) is first converted by `prepare` into
// `prep_bytes(n)` bytes; `run` then computes out[t * out_stride + r] = dot(row r, token t) for
// n_rows <= kGemmMaxRows rows (w_stride bytes apart) and n_tok <= kGemmMaxTok prepared tokens
// (a_stride bytes apart). Each (row, token) result is bit-identical whatever n_rows / n_tok, and
// equal to avx512_gemm_dot on the unprepared activation, so the thread split and the batch size
// never change results. nullptr when the type has no such kernel.
struct GemmKernel {
  size_t (*prep_bytes)(int64_t n);
  void (*prepare)(const void* a_quant, void* prep, int64_t n);
  void (*run)(const void* w, size_t w_stride, int n_rows, const void* prep, size_t a_stride,
              int n_tok, float* out, size_t out_stride, int64_t n);
};
const GemmKernel* avx512_gemm(DType weight_type);
VecDotFn avx512_gemm_dot(DType weight_type);
// The same kernels built with AVX512-VBMI and GFNI (byte permutes, one-op nibble unpacking;
// fewer uops, identical results).
const GemmKernel* avx512_gemm_vbmi(DType weight_type);
VecDotFn avx512_gemm_dot_vbmi(DType weight_type);
// The variant for this CPU.
inline const GemmKernel* avx512_gemm_best(DType weight_type) {
  return cpu_features().avx512vbmi && cpu_features().gfni ? avx512_gemm_vbmi(weight_type)
                                                          : avx512_gemm(weight_type);
}
inline VecDotFn avx512_gemm_dot_best(DType weight_type) {
  return cpu_features().avx512vbmi && cpu_features().gfni ? avx512_gemm_dot_vbmi(weight_type)
                                                          : avx512_gemm_dot(weight_type);
}
constexpr int kGemmMaxRows = 4;
constexpr int kGemmMaxTok = 4;

// rows16 kernels (repack.h): one 16-row group of nb blocks (32-element blocks for Q4_0/Q8_0,
// super-blocks for Q4_K/Q6_K) times n_tok <= kGemmMaxTok tokens, out[t * out_stride + r] =
// dot(row r, token t). A token is its activation row (Q8_0 or Q8_K, activation_type) plus what
// rows16_prepare derives from it: per block rows16_corr_per_block int32 corrections and the
// activation scale as f32. Per (row, token) the arithmetic is fixed (exact int32 sums per block,
// then the float steps of the scalar reference in repack.cc, in block order from acc = 0), so
// every implementation and every n_tok give the same bits.
struct Rows16Token {
  const void* q;
  const int32_t* corr;
  const float* da;
};
using Rows16Fn = void (*)(const uint8_t* group, int64_t nb, const Rows16Token* tok, int n_tok,
                          float* out, size_t out_stride);
Rows16Fn scalar_rows16(DType weight_type);
Rows16Fn avx512_rows16(DType weight_type);
// One token times kRows16PairGroups groups, `stride` bytes apart (a multiple of group_bytes;
// group_bytes when adjacent): the 16 outputs of group g at out + 16 * g * stride / group_bytes,
// the same bits as one Rows16Fn call per group. Far-apart groups (split streams) prefetch into
// the group right after their own, adjacent ones into the groups after the last. nullptr when the
// type has no such kernel. (4 groups measured no faster than 2.)
constexpr int kRows16PairGroups = 2;
using Rows16PairFn = void (*)(const uint8_t* group, size_t group_bytes, size_t stride, int64_t nb,
                              const Rows16Token& tok, float* out);
Rows16PairFn avx512_rows16_pair(DType weight_type);
// Elements per block of a rows16 type (0 for other types).
int rows16_block_elems(DType weight_type);
// Corrections per block: Q4_0/Q8_0 one (-8 or -128 times the block's activation sum, undoing the
// unsigned quants), Q6_K 16 (-32 times each 16-element sum), Q4_K 4 (the eight 32-element sums
// as int16 pairs (0,2) (1,3) (4,6) (5,7), for the mins).
int rows16_corr_per_block(DType weight_type);
void rows16_prepare(DType weight_type, const void* act, int64_t nb, int32_t* corr, float* da);
// How a rows16 type's GGUF block is split (repack.cc): the per-row scale field (`tail`, kept at
// the end of the group) and the rest, interleaved 4 bytes per row per 64-byte vector; `flip` is
// XORed into the interleaved bytes; `q6_recode`: Q6_K's quant bytes are recoded first
// (q6_recode below). nullptr for other types.
struct Rows16Format {
  int block_elems;
  int block_bytes;
  int tail_offset;
  int tail_bytes;
  uint8_t flip;
  bool q6_recode;
  int inter_bytes() const { return block_bytes - tail_bytes; }
  // Block byte of interleaved byte i.
  int block_byte(int i) const { return i < tail_offset ? i : i + tail_bytes; }
};
const Rows16Format* rows16_format(DType weight_type);
// Q6_K in rows16 recodes its quant bytes so that a kernel rebuilds each 6-bit quant in ~2 vector
// ops instead of ~3.5. For each half h and l in 0..31 the GGUF bytes a = ql[64h + l],
// b = ql[64h + 32 + l], c = qh[32h + l] hold the quants u0..u3 of elements 128h + l + 32i;
// recoded, a = u0 << 2 | u3 bits 0-1, b = u1 << 2 | u3 bits 2-3, c = u2 << 2 | u3 bits 4-5, so
// 4 * u0..u2 are one mask each (a kernel takes the fourth quant's scale 4x to match, and d / 4).
// A bijection of the same bytes; the decode is its inverse.
inline void q6_recode(uint8_t* a, uint8_t* b, uint8_t* c) {
  const int u0 = (*a & 15) | (*c & 3) << 4, u1 = (*b & 15) | (*c >> 2 & 3) << 4;
  const int u2 = *a >> 4 | (*c >> 4 & 3) << 4, u3 = *b >> 4 | (*c >> 6) << 4;
  *a = static_cast<uint8_t>(u0 << 2 | (u3 & 3));
  *b = static_cast<uint8_t>(u1 << 2 | (u3 >> 2 & 3));
  *c = static_cast<uint8_t>(u2 << 2 | u3 >> 4);
}
inline void q6_decode(uint8_t* a, uint8_t* b, uint8_t* c) {
  const int u0 = *a >> 2, u1 = *b >> 2, u2 = *c >> 2;
  const int u3 = (*a & 3) | (*b & 3) << 2 | (*c & 3) << 4;
  *a = static_cast<uint8_t>((u0 & 15) | (u2 & 15) << 4);
  *b = static_cast<uint8_t>((u1 & 15) | (u3 & 15) << 4);
  *c = static_cast<uint8_t>(u0 >> 4 | (u1 >> 4) << 2 | (u2 >> 4) << 4 | (u3 >> 4) << 6);
}
// Applies q6_recode (or q6_decode) to the ql/qh bytes of one GGUF-layout Q6_K block.
template <bool kDecode>
void q6_recode_block(uint8_t* block) {
  for (int h = 0; h < 2; ++h) {
    for (int l = 0; l < 32; ++l) {
      uint8_t* a = block + 64 * h + l;
      uint8_t* c = block + 128 + 32 * h + l;
      if constexpr (kDecode) {
        q6_decode(a, a + 32, c);
      } else {
        q6_recode(a, a + 32, c);
      }
    }
  }
}

// Q4_K / Q5_K 6-bit scale and min of sub-block j (0..7).
inline void k4_scale_min(const uint8_t* s, int j, uint8_t* sc, uint8_t* mn) {
  if (j < 4) {
    *sc = s[j] & 63;
    *mn = s[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4));
    *mn = static_cast<uint8_t>((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

// Q3_K: the 16 six-bit scales, already minus 32.
inline void q3k_scales(const uint8_t* scales, int8_t out[16]) {
  uint32_t a[3];
  for (int i = 0; i < 3; ++i) {
    a[i] = static_cast<uint32_t>(scales[4 * i]) | (static_cast<uint32_t>(scales[4 * i + 1]) << 8) |
           (static_cast<uint32_t>(scales[4 * i + 2]) << 16) |
           (static_cast<uint32_t>(scales[4 * i + 3]) << 24);
  }
  const uint32_t t = a[2];
  const uint32_t s[4] = {
      (a[0] & 0x0F0F0F0Fu) | (((t >> 0) & 0x03030303u) << 4),
      (a[1] & 0x0F0F0F0Fu) | (((t >> 2) & 0x03030303u) << 4),
      ((a[0] >> 4) & 0x0F0F0F0Fu) | (((t >> 4) & 0x03030303u) << 4),
      ((a[1] >> 4) & 0x0F0F0F0Fu) | (((t >> 6) & 0x03030303u) << 4),
  };
  for (int i = 0; i < 16; ++i) {
    out[i] = static_cast<int8_t>(static_cast<int>((s[i / 4] >> (8 * (i % 4))) & 0xFF) - 32);
  }
}

// Integer view of one weight block: element values q (offsets folded in, so that
// w = d * scale[sub] * q - dmin * min[sub]) and the per-sub-block integer scales and mins.
// Sub-blocks are 32 elements for the 32-blocks and Q4_K/Q5_K, 16 for Q2_K/Q3_K/Q6_K.
struct UnpackedBlock {
  int8_t q[kQK_K];
  int16_t scale[16];
  int16_t min[16];
  int sub_len;
  int n_sub;
  float d;
  float dmin;  // 0 for symmetric types; for Q4_1/Q5_1 the additive min m (scale/min unused)
};
// Unpacks block `block_index` of a row of `type` (any quantized weight type).
void unpack_block(DType type, const void* row, int64_t block_index, UnpackedBlock* out);

// Reference dequantization of a weight row (any vec_dot weight type), used by matmul_reference.
void dequantize_row_ref(DType type, const void* row, float* dst, int64_t n);

}  // namespace enclave::kernels::detail
