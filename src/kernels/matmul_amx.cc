// AMX-INT8 matrix-matrix products for prompt batches (Q4_0, Q8_0, Q4_K, Q6_K weights).
//
// Roles: the weights are the A operand (16 weight rows x K bytes, a row's elements in order, so
// unpacking needs no transpose) and the activations the B operand (K/4 rows x 16 tokens x 4
// bytes, the "VNNI" layout), so a C tile is 16 weight rows x 16 tokens of int32 sums.
//
// - Activations are quantized once per call (Q8_0 / Q8_K, the same bytes as the other paths) and
//   scattered into B tiles per 16-token "m-tile", with their float scales (and for Q4_K the
//   sub-block sums) beside them.
// - Weights stay in the mmap. Per 16-row "n-tile" a thread unpacks all blocks of those rows into a
//   small buffer of A tiles (Q4_0: nibble - 8; Q8_0: copy; K-quants: q times the sub-block's
//   integer scale, split into a high and a low byte) and reuses it for every m-tile.
// - 32-element types: one tile product per block (K = 32), then in float per block:
//   acc += (float(C) * d_w) * d_a. K-quants: the integer scale is already in the weights, so the
//   high- and low-byte products accumulate over the whole 256-element super-block in int32
//   (exact), then acc += (float(256 * C_hi + C_lo) * d_w [- float(mins . bsums) * dmin_w]) * d_a.
//
// Every (row, token) result is computed by that one sequence whatever the tiling, so the thread
// count, the row split and the batch size never change it.
#include "kernels/matmul_amx.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "kernels/quant_blocks.h"
#include "kernels/repack.h"
#include "kernels/vec_dot_impl.h"

namespace enclave::kernels::detail {
namespace {

constexpr int kTile = 16;  // weight rows per n-tile, tokens per m-tile
constexpr size_t kAlign = 64;

// ---- tiles ------------------------------------------------------------------------------------
// Palette 1 configuration (64 bytes, the layout LDTILECFG reads).
struct alignas(64) TileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};
static_assert(sizeof(TileConfig) == 64);

// Tile registers: two A (weights), two B (activations), four C (int32 sums). Macros, not
// constants: GCC's tile intrinsics paste the register number into the assembly text.
#define TMM_A0 0
#define TMM_A1 1
#define TMM_B0 2
#define TMM_B1 3
#define TMM_C0 4
#define TMM_C1 5
#define TMM_C2 6
#define TMM_C3 7

// k_bytes: bytes of K per tile product (32 for the 32-element blocks, 64 for the K-quants).
void configure_tiles(int k_bytes) {
  TileConfig cfg;
  std::memset(&cfg, 0, sizeof(cfg));
  cfg.palette_id = 1;
  for (int t : {TMM_A0, TMM_A1}) {
    cfg.rows[t] = kTile;
    cfg.colsb[t] = static_cast<uint16_t>(k_bytes);
  }
  for (int t : {TMM_B0, TMM_B1}) {
    cfg.rows[t] = static_cast<uint8_t>(k_bytes / 4);
    cfg.colsb[t] = 4 * kTile;
  }
  for (int t : {TMM_C0, TMM_C1, TMM_C2, TMM_C3}) {
    cfg.rows[t] = kTile;
    cfg.colsb[t] = 4 * kTile;
  }
  // GCC's _tile_loadconfig tells the compiler it reads only the first 8 bytes of the config, so
  // without this barrier the row and column stores can be dropped as dead (then the first tile
  // load faults with #UD).
  __asm__ __volatile__("" : : "r"(&cfg) : "memory");
  _tile_loadconfig(&cfg);
}

size_t align_up(size_t n) {
  return (n + kAlign - 1) / kAlign * kAlign;
}

uint8_t* align_ptr(void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  return reinterpret_cast<uint8_t*>((a + kAlign - 1) / kAlign * kAlign);
}

struct AlignedFree {
  void operator()(uint8_t* p) const { ::operator delete[](p, std::align_val_t{kAlign}); }
};
using AlignedBuffer = std::unique_ptr<uint8_t[], AlignedFree>;
AlignedBuffer make_buffer(size_t n) {
  return AlignedBuffer(static_cast<uint8_t*>(::operator new[](n, std::align_val_t{kAlign})));
}

// acc[r][t] (+)= float C tile, per-row weight scale, per-token activation scale.
using AccTile = float[kTile][kTile];
using IntTile = int32_t[kTile][kTile];

// ---- 32-element blocks: Q4_0, Q8_0 ------------------------------------------------------------
// Prepared activations, per m-tile: nb B tiles (8 rows x 64 bytes: row g holds elements 4g..4g+3
// of each of the 16 tokens), then nb x 16 f32 scales.
// Unpacked weights, per n-tile: nb A tiles (16 rows x 32 bytes), then nb x 16 f32 scales.
constexpr size_t kB32TileBytes = 8 * 64;
constexpr size_t kA32TileBytes = kTile * 32;

size_t block32_act_bytes(int64_t nb) {
  return static_cast<size_t>(nb) * (kB32TileBytes + kTile * sizeof(float));
}
size_t block32_weight_bytes(int64_t nb) {
  return static_cast<size_t>(nb) * (kA32TileBytes + kTile * sizeof(float));
}

// Token slot `slot` of an m-tile from its Q8_0 row.
void prepare_block32_token(const BlockQ8_0* a, int64_t nb, int slot, uint8_t* mtile) {
  auto* da = reinterpret_cast<float*>(mtile + nb * kB32TileBytes);
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* tile = mtile + b * kB32TileBytes + 4 * slot;
    for (int g = 0; g < 8; ++g) std::memcpy(tile + 64 * g, a[b].qs + 4 * g, 4);
    da[b * kTile + slot] = _cvtsh_ss(a[b].d);
  }
}

// Rows [0, n_valid) of an n-tile of a 32-element-block type: block b of row r as 32 signed bytes
// (`quants(block)`), its scale beside; the rest are zero (weights and scales), so they add +0.
template <typename Block, typename Quants>
void unpack_32(const uint8_t* w, size_t row_bytes, int n_valid, int64_t nb, uint8_t* out,
               Quants quants) {
  auto* wd = reinterpret_cast<float*>(out + nb * kA32TileBytes);
  for (int r = 0; r < kTile; ++r) {
    if (r >= n_valid) {
      for (int64_t b = 0; b < nb; ++b) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(out + b * kA32TileBytes + 32 * r),
                           _mm256_setzero_si256());
        wd[b * kTile + r] = 0.0f;
      }
      continue;
    }
    const auto* blk = reinterpret_cast<const Block*>(w + r * row_bytes);
    for (int64_t b = 0; b < nb; ++b) {
      _mm256_store_si256(reinterpret_cast<__m256i*>(out + b * kA32TileBytes + 32 * r),
                         quants(blk[b]));
      wd[b * kTile + r] = _cvtsh_ss(blk[b].d);
    }
  }
}

void unpack_q4_0(const uint8_t* w, size_t row_bytes, int n_valid, int64_t nb, uint8_t* out) {
  unpack_32<BlockQ4_0>(w, row_bytes, n_valid, nb, out, [](const BlockQ4_0& blk) {
    const __m128i m4 = _mm_set1_epi8(0x0F);
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.qs));
    const __m128i lo = _mm_and_si128(qs, m4);
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(qs, 4), m4);
    return _mm256_sub_epi8(_mm256_set_m128i(hi, lo), _mm256_set1_epi8(8));
  });
}

// Four rows16-style vectors (dword r of v[k] = bytes 4k..4k+3 of row r) transposed 4x4 within
// each 128-bit lane: lane L of rows[j] holds those 16 bytes of row 4L + j.
inline void transpose_quad(const __m512i v[4], __m512i rows[4]) {
  const __m512i t0 = _mm512_unpacklo_epi32(v[0], v[1]), t1 = _mm512_unpackhi_epi32(v[0], v[1]);
  const __m512i t2 = _mm512_unpacklo_epi32(v[2], v[3]), t3 = _mm512_unpackhi_epi32(v[2], v[3]);
  rows[0] = _mm512_unpacklo_epi64(t0, t2);
  rows[1] = _mm512_unpackhi_epi64(t0, t2);
  rows[2] = _mm512_unpacklo_epi64(t1, t3);
  rows[3] = _mm512_unpackhi_epi64(t1, t3);
}
inline void transpose_rows16_quad(const uint8_t* p, __m512i rows[4]) {
  const __m512i v[4] = {_mm512_loadu_si512(p), _mm512_loadu_si512(p + 64),
                        _mm512_loadu_si512(p + 128), _mm512_loadu_si512(p + 192)};
  transpose_quad(v, rows);
}

// The same tiles from one rows16 group (repack.h): per block the quant vectors transposed back
// into rows; the 16 scales are already one row of the scale table.
void unpack_q4_0_rows16(const uint8_t* group, int64_t nb, uint8_t* out) {
  auto* wd = reinterpret_cast<float*>(out + nb * kA32TileBytes);
  const auto* scales = group + nb * 256;
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const __m512i eight = _mm512_set1_epi8(8);
  for (int64_t b = 0; b < nb; ++b) {
    __m512i rows[4];
    transpose_rows16_quad(group + b * 256, rows);
    uint8_t* tile = out + b * kA32TileBytes;
    for (int j = 0; j < 4; ++j) {
      alignas(64) uint8_t lo[64], hi[64];
      _mm512_store_si512(lo, _mm512_sub_epi8(_mm512_and_si512(rows[j], m4), eight));
      _mm512_store_si512(
          hi, _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(rows[j], 4), m4), eight));
      for (int lane = 0; lane < 4; ++lane) {
        uint8_t* row = tile + 32 * (4 * lane + j);
        std::memcpy(row, lo + 16 * lane, 16);
        std::memcpy(row + 16, hi + 16 * lane, 16);
      }
    }
    _mm512_storeu_ps(
        wd + b * kTile,
        _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales + b * 32))));
  }
}
// Q8_0: two quads per block (bytes 0..15 and 16..31 of each row), excess-128 back to int8.
void unpack_q8_0_rows16(const uint8_t* group, int64_t nb, uint8_t* out) {
  auto* wd = reinterpret_cast<float*>(out + nb * kA32TileBytes);
  const auto* scales = group + nb * 512;
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* tile = out + b * kA32TileBytes;
    for (int half = 0; half < 2; ++half) {
      __m512i rows[4];
      transpose_rows16_quad(group + b * 512 + 256 * half, rows);
      for (int j = 0; j < 4; ++j) {
        alignas(64) uint8_t q[64];
        _mm512_store_si512(q, _mm512_xor_si512(rows[j], flip));
        for (int lane = 0; lane < 4; ++lane) {
          std::memcpy(tile + 32 * (4 * lane + j) + 16 * half, q + 16 * lane, 16);
        }
      }
    }
    _mm512_storeu_ps(
        wd + b * kTile,
        _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales + b * 32))));
  }
}

void unpack_q8_0(const uint8_t* w, size_t row_bytes, int n_valid, int64_t nb, uint8_t* out) {
  unpack_32<BlockQ8_0>(w, row_bytes, n_valid, nb, out, [](const BlockQ8_0& blk) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs));
  });
}

inline void scale_block32(const IntTile& c, const float* wd, const float* da, AccTile& acc) {
  const __m512 vda = _mm512_loadu_ps(da);
  for (int r = 0; r < kTile; ++r) {
    const __m512 v =
        _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c[r])), _mm512_set1_ps(wd[r]));
    _mm512_store_ps(acc[r], _mm512_fmadd_ps(v, vda, _mm512_load_ps(acc[r])));
  }
}

// Tile products of block b into c (n-tile i x m-tile j at c[2 * i + j]).
template <int NN, int NM>
inline void tiles_block32(const uint8_t* const* w, const uint8_t* const* a, int64_t b, IntTile* c) {
  const size_t wo = static_cast<size_t>(b) * kA32TileBytes;
  const size_t ao = static_cast<size_t>(b) * kB32TileBytes;
  _tile_loadd(TMM_A0, w[0] + wo, 32);
  _tile_loadd(TMM_B0, a[0] + ao, 64);
  _tile_zero(TMM_C0);
  _tile_dpbssd(TMM_C0, TMM_A0, TMM_B0);
  if constexpr (NM == 2) {
    _tile_loadd(TMM_B1, a[1] + ao, 64);
    _tile_zero(TMM_C1);
    _tile_dpbssd(TMM_C1, TMM_A0, TMM_B1);
  }
  if constexpr (NN == 2) {
    _tile_loadd(TMM_A1, w[1] + wo, 32);
    _tile_zero(TMM_C2);
    _tile_dpbssd(TMM_C2, TMM_A1, TMM_B0);
    if constexpr (NM == 2) {
      _tile_zero(TMM_C3);
      _tile_dpbssd(TMM_C3, TMM_A1, TMM_B1);
    }
  }
  _tile_stored(TMM_C0, c[0], 64);
  if constexpr (NM == 2) _tile_stored(TMM_C1, c[1], 64);
  if constexpr (NN == 2) _tile_stored(TMM_C2, c[2], 64);
  if constexpr (NN == 2 && NM == 2) _tile_stored(TMM_C3, c[3], 64);
}

// acc[i * NM + j] = sum over blocks of n-tile i (w[i]) times m-tile j (a[j]). Software
// pipelined: the float scaling of block b - 1 (from the other half of the staging area) runs
// while the tile unit works on block b, so vector loads never wait for fresh tile stores.
template <int NN, int NM>
void run_block32(const uint8_t* const* w, const uint8_t* const* a, int64_t nb, AccTile* acc) {
  alignas(64) IntTile c[2][4];
  const float* wd[2] = {
      reinterpret_cast<const float*>(w[0] + nb * kA32TileBytes),
      NN == 2 ? reinterpret_cast<const float*>(w[1] + nb * kA32TileBytes) : nullptr};
  const float* da[2] = {
      reinterpret_cast<const float*>(a[0] + nb * kB32TileBytes),
      NM == 2 ? reinterpret_cast<const float*>(a[1] + nb * kB32TileBytes) : nullptr};
  auto scale = [&](int64_t b) {
    for (int i = 0; i < NN; ++i) {
      for (int j = 0; j < NM; ++j) {
        scale_block32(c[b & 1][2 * i + j], wd[i] + b * kTile, da[j] + b * kTile, acc[i * NM + j]);
      }
    }
  };
  tiles_block32<NN, NM>(w, a, 0, c[0]);
  for (int64_t b = 1; b < nb; ++b) {
    tiles_block32<NN, NM>(w, a, b, c[b & 1]);
    scale(b - 1);
  }
  scale(nb - 1);
}

// ---- K-quants: Q4_K, Q6_K ---------------------------------------------------------------------
// A super-block is 4 steps of 64 elements. Within a step the weight bytes come out of the int16
// -> int8 packs in the order step_element() gives (the packs interleave 8-element groups of the two
// source vectors per 128-bit lane); the activations are laid out in the same order, which a dot
// product does not mind.
//
// Prepared activations, per m-tile: nsb x 4 B tiles (16 rows x 64 bytes),
// nsb x 16 f32 scales, and for Q4_K nsb x 4 x 16 int32 (two int16 sums of 32-element sub-blocks 2p,
// 2p+1 per token). Unpacked weights, per n-tile: nsb x 4 x {high, low} A tiles (16 rows x 64
// bytes), nsb x 16 f32 d, and for Q4_K nsb x 16 f32 dmin and nsb x 16 x 4 int32 (mins of sub-blocks
// 2p, 2p+1).
constexpr size_t kKTileBytes = kTile * 64;

// Element (within the step) of step byte 4g, for B tile row g; bytes 4g..4g+3 are consecutive.
constexpr int step_element(int g) {
  const int lane = g / 4, k = 4 * (g % 4);
  return k < 8 ? 8 * lane + k : 32 + 8 * lane + (k - 8);
}

template <bool kQ4K>
size_t kquant_act_bytes(int64_t nsb) {
  return static_cast<size_t>(nsb) *
         (4 * kKTileBytes + kTile * sizeof(float) + (kQ4K ? 4 * kTile * sizeof(int32_t) : 0));
}
template <bool kQ4K>
size_t kquant_weight_bytes(int64_t nsb) {
  return static_cast<size_t>(nsb) *
         (8 * kKTileBytes + kTile * sizeof(float) +
          (kQ4K ? kTile * sizeof(float) + 4 * kTile * sizeof(int32_t) : 0));
}

template <bool kQ4K>
void prepare_kquant_token(const BlockQ8_K* a, int64_t nsb, int slot, uint8_t* mtile) {
  auto* da = reinterpret_cast<float*>(mtile + nsb * 4 * kKTileBytes);
  auto* bs = reinterpret_cast<int32_t*>(da + nsb * kTile);
  for (int64_t sb = 0; sb < nsb; ++sb) {
    for (int s = 0; s < 4; ++s) {
      uint8_t* tile = mtile + (sb * 4 + s) * kKTileBytes + 4 * slot;
      const int8_t* q = a[sb].qs + 64 * s;
      for (int g = 0; g < 16; ++g) std::memcpy(tile + 64 * g, q + step_element(g), 4);
    }
    da[sb * kTile + slot] = a[sb].d;
    if constexpr (kQ4K) {
      for (int p = 0; p < 4; ++p) {
        const int16_t s0 = static_cast<int16_t>(a[sb].bsums[4 * p] + a[sb].bsums[4 * p + 1]);
        const int16_t s1 = static_cast<int16_t>(a[sb].bsums[4 * p + 2] + a[sb].bsums[4 * p + 3]);
        bs[(sb * 4 + p) * kTile + slot] =
            static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint16_t>(s0)) |
                                 (static_cast<uint32_t>(static_cast<uint16_t>(s1)) << 16));
      }
    }
  }
}

// 64 int16 products (v0: step elements 0..31, v1: 32..63) -> high and low bytes in step order.
inline void store_split(__m512i v0, __m512i v1, bool is_signed, uint8_t* hi, uint8_t* lo) {
  const __m512i ff = _mm512_set1_epi16(0xFF);
  const __m512i h = is_signed
                        ? _mm512_packs_epi16(_mm512_srai_epi16(v0, 8), _mm512_srai_epi16(v1, 8))
                        : _mm512_packus_epi16(_mm512_srli_epi16(v0, 8), _mm512_srli_epi16(v1, 8));
  const __m512i l = _mm512_packus_epi16(_mm512_and_si512(v0, ff), _mm512_and_si512(v1, ff));
  _mm512_store_si512(hi, h);
  _mm512_store_si512(lo, l);
}

void zero_kquant_row(int64_t nsb, int r, uint8_t* out) {
  for (int64_t t = 0; t < nsb * 8; ++t)
    _mm512_store_si512(out + t * kKTileBytes + 64 * r, _mm512_setzero_si512());
}

// Q6_K: v = scale * (q - 32) in [-4096, 4064]: signed high byte, unsigned low byte.
void unpack_q6_k(const uint8_t* w, size_t row_bytes, int n_valid, int64_t nsb, uint8_t* out) {
  auto* wd = reinterpret_cast<float*>(out + nsb * 8 * kKTileBytes);
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const __m512i m30 = _mm512_set1_epi8(0x30);
  const __m512i k32 = _mm512_set1_epi8(32);
  // Bits 4,5 of element i get qh bits (0,1) / (2,3) (low nibbles, first / second 32 bytes) and
  // (4,5) / (6,7) (high nibbles).
  const __m512i shl_lo = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
  const __m512i shr_hi = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
  for (int r = 0; r < kTile; ++r) {
    if (r >= n_valid) {
      zero_kquant_row(nsb, r, out);
      for (int64_t sb = 0; sb < nsb; ++sb) wd[sb * kTile + r] = 0.0f;
      continue;
    }
    const auto* blk = reinterpret_cast<const BlockQ6_K*>(w + r * row_bytes);
    for (int64_t sb = 0; sb < nsb; ++sb) {
      const BlockQ6_K& b = blk[sb];
      __m512i q[4];  // q[s]: elements 64s .. 64s+63, q - 32
      for (int h = 0; h < 2; ++h) {
        const __m512i l = _mm512_loadu_si512(b.ql + 64 * h);
        const __m512i hb = _mm512_broadcast_i64x4(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * h)));
        const __m512i lo_bits = _mm512_and_si512(_mm512_sllv_epi16(hb, shl_lo), m30);
        const __m512i hi_bits = _mm512_and_si512(_mm512_srlv_epi16(hb, shr_hi), m30);
        q[2 * h] = _mm512_sub_epi8(_mm512_or_si512(_mm512_and_si512(l, m4), lo_bits), k32);
        q[2 * h + 1] = _mm512_sub_epi8(
            _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4), hi_bits), k32);
      }
      const __m512i sc = _mm512_castsi256_si512(
          _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales))));
      for (int s = 0; s < 4; ++s) {
        // Sub-blocks of 16: v0 covers scales 4s, 4s+1; v1 covers 4s+2, 4s+3.
        const __m512i i0 =
            _mm512_inserti64x4(_mm512_set1_epi16(static_cast<int16_t>(4 * s)),
                               _mm256_set1_epi16(static_cast<int16_t>(4 * s + 1)), 1);
        const __m512i i1 = _mm512_add_epi16(i0, _mm512_set1_epi16(2));
        const __m512i v0 = _mm512_mullo_epi16(_mm512_cvtepi8_epi16(_mm512_castsi512_si256(q[s])),
                                              _mm512_permutexvar_epi16(i0, sc));
        const __m512i v1 =
            _mm512_mullo_epi16(_mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64(q[s], 1)),
                               _mm512_permutexvar_epi16(i1, sc));
        uint8_t* tiles = out + (sb * 4 + s) * 2 * kKTileBytes + 64 * r;
        store_split(v0, v1, true, tiles, tiles + kKTileBytes);
      }
      wd[sb * kTile + r] = _cvtsh_ss(b.d);
    }
  }
}

// Q4_K: v = scale * q in [0, 945]: both bytes unsigned; the mins go through the activation sums.
void unpack_q4_k(const uint8_t* w, size_t row_bytes, int n_valid, int64_t nsb, uint8_t* out) {
  auto* wd = reinterpret_cast<float*>(out + nsb * 8 * kKTileBytes);
  float* wdmin = wd + nsb * kTile;
  auto* wmin = reinterpret_cast<int32_t*>(wdmin + nsb * kTile);
  const __m512i m4 = _mm512_set1_epi16(0x0F);
  for (int r = 0; r < kTile; ++r) {
    if (r >= n_valid) {
      zero_kquant_row(nsb, r, out);
      for (int64_t sb = 0; sb < nsb; ++sb) {
        wd[sb * kTile + r] = wdmin[sb * kTile + r] = 0.0f;
        for (int p = 0; p < 4; ++p) wmin[(sb * kTile + r) * 4 + p] = 0;
      }
      continue;
    }
    const auto* blk = reinterpret_cast<const BlockQ4_K*>(w + r * row_bytes);
    for (int64_t sb = 0; sb < nsb; ++sb) {
      const BlockQ4_K& b = blk[sb];
      uint8_t sc[8], mn[8];
      for (int j = 0; j < 8; ++j) k4_scale_min(b.scales, j, &sc[j], &mn[j]);
      for (int s = 0; s < 4; ++s) {
        const __m512i q = _mm512_cvtepu8_epi16(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * s)));
        const __m512i v0 =
            _mm512_mullo_epi16(_mm512_and_si512(q, m4), _mm512_set1_epi16(sc[2 * s]));
        const __m512i v1 =
            _mm512_mullo_epi16(_mm512_srli_epi16(q, 4), _mm512_set1_epi16(sc[2 * s + 1]));
        uint8_t* tiles = out + (sb * 4 + s) * 2 * kKTileBytes + 64 * r;
        store_split(v0, v1, false, tiles, tiles + kKTileBytes);
      }
      for (int p = 0; p < 4; ++p) {
        wmin[(sb * kTile + r) * 4 + p] = static_cast<int32_t>(
            static_cast<uint32_t>(mn[2 * p]) | (static_cast<uint32_t>(mn[2 * p + 1]) << 16));
      }
      wd[sb * kTile + r] = _cvtsh_ss(b.d);
      wdmin[sb * kTile + r] = _cvtsh_ss(b.dmin);
    }
  }
}

// ---- K-quants from rows16 groups --------------------------------------------------------------
// The same A tiles and scale data as unpack_q4_k / unpack_q6_k give for a group's 16 GGUF rows,
// read straight from the group (repack.h), where dword r of every vector belongs to row r: the 16
// rows' scales decode at once, vpmaddubsw against a per-row scale in alternate bytes gives the
// int16 products of the even and the odd elements, and only the product bytes are transposed into
// tile rows, 4 dword vectors at a time, stored as 16-byte runs. (Copying the group back to GGUF
// rows first cost ~10 % of Q4_K_M prompt throughput.)

// Bytes 0-7 (lo) and 8-15 (hi) of the int16 products of the even (pe) and odd (po) bytes of a
// vector, each back at its element's byte: the two tile bytes store_split gives an element.
inline void split_products(__m512i pe, __m512i po, __m512i* lo, __m512i* hi) {
  const __m512i low_byte = _mm512_set1_epi16(0x00FF);
  // 0xCA: first operand ? second : third, bit by bit.
  *lo = _mm512_ternarylogic_epi32(low_byte, pe, _mm512_slli_epi16(po, 8), 0xCA);
  *hi = _mm512_ternarylogic_epi32(low_byte, _mm512_srli_epi16(pe, 8), po, 0xCA);
}

// Byte `i` (0..3) of every dword of v, copied into bytes 0 and 2 of the dword (`odd`: 1 and 3),
// the others zero: as vpmaddubsw's signed operand it multiplies only the even (odd) bytes of the
// other operand, by row r's byte in lane r.
inline __m512i spread_dword_byte(__m512i v, int i, bool odd) {
  const auto z = static_cast<char>(0x80);  // vpshufb: zero this byte
  const char b0 = static_cast<char>(i), b1 = static_cast<char>(4 + i);
  const char b2 = static_cast<char>(8 + i), b3 = static_cast<char>(12 + i);
  const __m128i ctl = odd ? _mm_setr_epi8(z, b0, z, b0, z, b1, z, b1, z, b2, z, b2, z, b3, z, b3)
                          : _mm_setr_epi8(b0, z, b0, z, b1, z, b1, z, b2, z, b2, z, b3, z, b3, z);
  return _mm512_shuffle_epi8(v, _mm512_broadcast_i32x4(ctl));
}

// d[k] (dword r = 4 bytes of row r) transposed and stored: row r gets d[0..3]'s dwords r as 16
// bytes at base + r * row_stride.
inline void store_quad(const __m512i d[4], uint8_t* base, size_t row_stride) {
  __m512i rows[4];
  transpose_quad(d, rows);
#pragma GCC unroll 16
  for (int j = 0; j < 4; ++j) {
    auto at = [&](int lane) {
      return reinterpret_cast<__m128i*>(base + (4 * lane + j) * row_stride);
    };
    _mm_storeu_si128(at(0), _mm512_castsi512_si128(rows[j]));
    _mm_storeu_si128(at(1), _mm512_extracti32x4_epi32(rows[j], 1));
    _mm_storeu_si128(at(2), _mm512_extracti32x4_epi32(rows[j], 2));
    _mm_storeu_si128(at(3), _mm512_extracti32x4_epi32(rows[j], 3));
  }
}

// Tile row bytes 16c..16c+15 of a step are its elements 8c..8c+7, then 32+8c..32+8c+7
// (step_element): 4 dwords of 4 consecutive elements each, d[0..3] below.

// Q4_K group: per super-block 3 scale vectors, then 32 qs vectors (vector 3 + m: qs bytes 4m..4m+3,
// low nibbles elements 64(m / 8) + 4(m % 8).., high nibbles 32 further); tails d | dmin << 16.
void unpack_q4_k_rows16(const uint8_t* group, int64_t nsb, uint8_t* out) {
  constexpr size_t kInter = kTile * 140;
  auto* wd = reinterpret_cast<float*>(out + nsb * 8 * kKTileBytes);
  float* wdmin = wd + nsb * kTile;
  auto* wmin = reinterpret_cast<int32_t*>(wdmin + nsb * kTile);
  const uint8_t* tails = group + nsb * kInter;
  const __m512i m4 = _mm512_set1_epi8(0x0F), m6 = _mm512_set1_epi8(0x3F);
  const __m512i m30 = _mm512_set1_epi8(0x30);
  // vpshufb: bytes 2p and 2p + 1 of each dword as two int16 (the wmin pairs).
  const auto z = static_cast<char>(0x80);
  const __m512i pair_lo =
      _mm512_broadcast_i32x4(_mm_setr_epi8(0, z, 1, z, 4, z, 5, z, 8, z, 9, z, 12, z, 13, z));
  const __m512i pair_hi =
      _mm512_broadcast_i32x4(_mm_setr_epi8(2, z, 3, z, 6, z, 7, z, 10, z, 11, z, 14, z, 15, z));
  for (int64_t sb = 0; sb < nsb; ++sb) {
    const uint8_t* v = group + sb * kInter;
    const __m512i s0 = _mm512_loadu_si512(v), s1 = _mm512_loadu_si512(v + 64);
    const __m512i s2 = _mm512_loadu_si512(v + 128);
    // Byte j of sc[0] / mn[0]: scale / min of sub-block j; of sc[1] / mn[1]: of 4 + j (the
    // k4_scale_min bit layout).
    const __m512i sc[2] = {
        _mm512_and_si512(s0, m6),
        _mm512_or_si512(_mm512_and_si512(s2, m4), _mm512_and_si512(_mm512_srli_epi32(s0, 2), m30))};
    const __m512i mn[2] = {_mm512_and_si512(s1, m6),
                           _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(s2, 4), m4),
                                           _mm512_and_si512(_mm512_srli_epi32(s1, 2), m30))};
    const __m512i mins[4] = {
        _mm512_shuffle_epi8(mn[0], pair_lo), _mm512_shuffle_epi8(mn[0], pair_hi),
        _mm512_shuffle_epi8(mn[1], pair_lo), _mm512_shuffle_epi8(mn[1], pair_hi)};
    store_quad(mins, reinterpret_cast<uint8_t*>(wmin + sb * kTile * 4), 4 * sizeof(int32_t));
    const __m512i tail = _mm512_loadu_si512(tails + sb * 64);
    _mm512_storeu_ps(wd + sb * kTile, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(tail)));
    _mm512_storeu_ps(wdmin + sb * kTile,
                     _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(tail, 16))));
#pragma GCC unroll 16
    for (int s = 0; s < 4; ++s) {
      // Low nibbles: sub-block 2s; high nibbles: 2s + 1.
      const __m512i lo_even = spread_dword_byte(sc[s / 2], (2 * s) % 4, false);
      const __m512i lo_odd = spread_dword_byte(sc[s / 2], (2 * s) % 4, true);
      const __m512i hi_even = spread_dword_byte(sc[s / 2], (2 * s + 1) % 4, false);
      const __m512i hi_odd = spread_dword_byte(sc[s / 2], (2 * s + 1) % 4, true);
      uint8_t* hi_tile = out + (sb * 4 + s) * 2 * kKTileBytes;
      uint8_t* lo_tile = hi_tile + kKTileBytes;
      const uint8_t* qs = v + 192 + 512 * s;
#pragma GCC unroll 16
      for (int c = 0; c < 4; ++c) {
        __m512i hi_d[4], lo_d[4];
#pragma GCC unroll 16
        for (int k = 0; k < 2; ++k) {
          const __m512i q = _mm512_loadu_si512(qs + 64 * (2 * c + k));
          const __m512i ln = _mm512_and_si512(q, m4);
          const __m512i hn = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
          split_products(_mm512_maddubs_epi16(ln, lo_even), _mm512_maddubs_epi16(ln, lo_odd),
                         &lo_d[k], &hi_d[k]);
          split_products(_mm512_maddubs_epi16(hn, hi_even), _mm512_maddubs_epi16(hn, hi_odd),
                         &lo_d[2 + k], &hi_d[2 + k]);
        }
        store_quad(hi_d, hi_tile + 16 * c, 64);
        store_quad(lo_d, lo_tile + 16 * c, 64);
      }
    }
  }
}

// Q6_K group: per super-block 32 ql vectors, 16 qh vectors and 4 scale vectors, recoded
// (q6_recode): for half h and m in 0..7, the bytes a, b, c of vectors 16h + m, 16h + 8 + m and
// 32 + 8h + m hold 4 x u0, u1, u2 above two bits each of u3, the quants of elements
// 128h + 32i + 4m.. (i = 0..3); tails: d.
void unpack_q6_k_rows16(const uint8_t* group, int64_t nsb, uint8_t* out) {
  constexpr size_t kInter = kTile * 208;
  auto* wd = reinterpret_cast<float*>(out + nsb * 8 * kKTileBytes);
  const uint8_t* tails = group + nsb * kInter;
  const __m512i m3 = _mm512_set1_epi8(0x03), m0f = _mm512_set1_epi8(0x0F);
  const __m512i m3f = _mm512_set1_epi8(0x3F);
  for (int64_t sb = 0; sb < nsb; ++sb) {
    const uint8_t* v = group + sb * kInter;
    // Byte S % 4 of sc[S / 4]: the int8 scale of 16-element sub-block S.
    const __m512i sc[4] = {_mm512_loadu_si512(v + 48 * 64), _mm512_loadu_si512(v + 49 * 64),
                           _mm512_loadu_si512(v + 50 * 64), _mm512_loadu_si512(v + 51 * 64)};
    _mm512_storeu_ps(
        wd + sb * kTile,
        _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tails + sb * 32))));
#pragma GCC unroll 16
    for (int h = 0; h < 2; ++h) {
#pragma GCC unroll 16
      for (int c = 0; c < 4; ++c) {
        __m512i u[2][4];  // [m - 2c][i]: quants (0..63) of elements 128h + 32i + 4m..
#pragma GCC unroll 16
        for (int k = 0; k < 2; ++k) {
          const int m = 2 * c + k;
          const __m512i a = _mm512_loadu_si512(v + (16 * h + m) * 64);
          const __m512i b = _mm512_loadu_si512(v + (16 * h + 8 + m) * 64);
          const __m512i cq = _mm512_loadu_si512(v + (32 + 8 * h + m) * 64);
          u[k][0] = _mm512_and_si512(_mm512_srli_epi16(a, 2), m3f);
          u[k][1] = _mm512_and_si512(_mm512_srli_epi16(b, 2), m3f);
          u[k][2] = _mm512_and_si512(_mm512_srli_epi16(cq, 2), m3f);
          // Bits 0-1 of a, b and c side by side (0xCA: first operand ? second : third).
          const __m512i ab = _mm512_ternarylogic_epi32(m3, a, _mm512_slli_epi16(b, 2), 0xCA);
          u[k][3] = _mm512_and_si512(
              _mm512_ternarylogic_epi32(m0f, ab, _mm512_slli_epi16(cq, 4), 0xCA), m3f);
        }
        // Step 2h + e holds i = 2e (step elements 0..31) and 2e + 1 (32..63).
#pragma GCC unroll 16
        for (int e = 0; e < 2; ++e) {
          __m512i hi_d[4], lo_d[4];
#pragma GCC unroll 16
          for (int di = 0; di < 2; ++di) {
            const int i = 2 * e + di;
            const int sub = 8 * h + 2 * i + c / 2;  // (128h + 32i + 4m) / 16 for m = 2c, 2c + 1
            const __m512i even = spread_dword_byte(sc[sub / 4], sub % 4, false);
            const __m512i odd = spread_dword_byte(sc[sub / 4], sub % 4, true);
            // (u - 32) * scale = u * scale - 32 * scale: vpmaddubsw needs the unsigned u.
            const __m512i scale32 = _mm512_srai_epi16(_mm512_slli_epi16(even, 8), 3);
#pragma GCC unroll 16
            for (int k = 0; k < 2; ++k) {
              split_products(_mm512_sub_epi16(_mm512_maddubs_epi16(u[k][i], even), scale32),
                             _mm512_sub_epi16(_mm512_maddubs_epi16(u[k][i], odd), scale32),
                             &lo_d[2 * di + k], &hi_d[2 * di + k]);
            }
          }
          uint8_t* hi_tile = out + (sb * 4 + 2 * h + e) * 2 * kKTileBytes;
          store_quad(hi_d, hi_tile + 16 * c, 64);
          store_quad(lo_d, hi_tile + kKTileBytes + 16 * c, 64);
        }
      }
    }
  }
}

template <bool kQ4K>
inline void scale_kquant(const IntTile& hi, const IntTile& lo, const float* wd, const float* wdmin,
                         const int32_t* wmin, const int32_t* bs, const float* da, AccTile& acc) {
  const __m512 vda = _mm512_loadu_ps(da);
  __m512i vbs[4];
  if constexpr (kQ4K) {
    for (int p = 0; p < 4; ++p) vbs[p] = _mm512_loadu_si512(bs + p * kTile);
  }
  for (int r = 0; r < kTile; ++r) {
    const __m512i c =
        _mm512_add_epi32(_mm512_slli_epi32(_mm512_load_si512(hi[r]), 8), _mm512_load_si512(lo[r]));
    __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(c), _mm512_set1_ps(wd[r]));
    if constexpr (kQ4K) {
      __m512i m = _mm512_madd_epi16(vbs[0], _mm512_set1_epi32(wmin[4 * r]));
      for (int p = 1; p < 4; ++p)
        m = _mm512_add_epi32(m, _mm512_madd_epi16(vbs[p], _mm512_set1_epi32(wmin[4 * r + p])));
      v = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(m), _mm512_set1_ps(wdmin[r]), v);
    }
    _mm512_store_ps(acc[r], _mm512_fmadd_ps(v, vda, _mm512_load_ps(acc[r])));
  }
}

// acc[j] = sum over super-blocks of the n-tile (w) times m-tile j (a[j]).
template <bool kQ4K, int NM>
void run_kquant(const uint8_t* w, const uint8_t* const* a, int64_t nsb, AccTile* acc) {
  const auto* wd = reinterpret_cast<const float*>(w + nsb * 8 * kKTileBytes);
  const float* wdmin = wd + nsb * kTile;
  const auto* wmin = reinterpret_cast<const int32_t*>(wdmin + nsb * kTile);
  const float* da[2];
  const int32_t* bs[2] = {nullptr, nullptr};
  for (int j = 0; j < NM; ++j) {
    da[j] = reinterpret_cast<const float*>(a[j] + nsb * 4 * kKTileBytes);
    bs[j] = reinterpret_cast<const int32_t*>(da[j] + nsb * kTile);
  }
  alignas(64) IntTile c2[2][4];
  auto tiles = [&](int64_t sb, IntTile* c) {
    _tile_zero(TMM_C0);
    _tile_zero(TMM_C1);
    if constexpr (NM == 2) {
      _tile_zero(TMM_C2);
      _tile_zero(TMM_C3);
    }
    for (int s = 0; s < 4; ++s) {
      const uint8_t* wt = w + (sb * 4 + s) * 2 * kKTileBytes;
      const size_t ao = static_cast<size_t>(sb * 4 + s) * kKTileBytes;
      _tile_loadd(TMM_A0, wt, 64);
      _tile_loadd(TMM_A1, wt + kKTileBytes, 64);
      _tile_loadd(TMM_B0, a[0] + ao, 64);
      if constexpr (kQ4K) {
        _tile_dpbusd(TMM_C0, TMM_A0, TMM_B0);
      } else {
        _tile_dpbssd(TMM_C0, TMM_A0, TMM_B0);
      }
      _tile_dpbusd(TMM_C1, TMM_A1, TMM_B0);
      if constexpr (NM == 2) {
        _tile_loadd(TMM_B1, a[1] + ao, 64);
        if constexpr (kQ4K) {
          _tile_dpbusd(TMM_C2, TMM_A0, TMM_B1);
        } else {
          _tile_dpbssd(TMM_C2, TMM_A0, TMM_B1);
        }
        _tile_dpbusd(TMM_C3, TMM_A1, TMM_B1);
      }
    }
    _tile_stored(TMM_C0, c[0], 64);
    _tile_stored(TMM_C1, c[1], 64);
    if constexpr (NM == 2) {
      _tile_stored(TMM_C2, c[2], 64);
      _tile_stored(TMM_C3, c[3], 64);
    }
  };
  auto scale = [&](int64_t sb) {
    const IntTile* c = c2[sb & 1];
    for (int j = 0; j < NM; ++j) {
      scale_kquant<kQ4K>(c[2 * j], c[2 * j + 1], wd + sb * kTile, wdmin + sb * kTile,
                         wmin + sb * kTile * 4, bs[j] + sb * 4 * kTile, da[j] + sb * kTile, acc[j]);
    }
  };
  // Pipelined as run_block32.
  tiles(0, c2[0]);
  for (int64_t sb = 1; sb < nsb; ++sb) {
    tiles(sb, c2[sb & 1]);
    scale(sb - 1);
  }
  scale(nsb - 1);
}

// ---- driver -----------------------------------------------------------------------------------
struct Plan {
  bool kquant = false;
  bool q4k = false;
  int64_t n_blocks = 0;     // 32-element blocks or 256-element super-blocks per row
  size_t act_bytes = 0;     // per m-tile
  size_t weight_bytes = 0;  // per n-tile
  int n_tiles_per_chunk = 1;
};

Plan make_plan(const WeightMatrix& w) {
  Plan p;
  switch (w.type) {
    case DType::kQ4_0:
    case DType::kQ8_0:
      p.n_blocks = w.cols / 32;
      p.act_bytes = block32_act_bytes(p.n_blocks);
      p.weight_bytes = block32_weight_bytes(p.n_blocks);
      p.n_tiles_per_chunk = 2;
      break;
    case DType::kQ4_K:
      p.kquant = p.q4k = true;
      p.n_blocks = w.cols / kQK_K;
      p.act_bytes = kquant_act_bytes<true>(p.n_blocks);
      p.weight_bytes = kquant_weight_bytes<true>(p.n_blocks);
      break;
    default:  // Q6_K
      p.kquant = true;
      p.n_blocks = w.cols / kQK_K;
      p.act_bytes = kquant_act_bytes<false>(p.n_blocks);
      p.weight_bytes = kquant_weight_bytes<false>(p.n_blocks);
      break;
  }
  p.act_bytes = align_up(p.act_bytes);
  p.weight_bytes = align_up(p.weight_bytes);
  return p;
}

void unpack(DType type, const uint8_t* w, size_t row_bytes, int n_valid, int64_t nb, uint8_t* out) {
  switch (type) {
    case DType::kQ4_0:
      return unpack_q4_0(w, row_bytes, n_valid, nb, out);
    case DType::kQ8_0:
      return unpack_q8_0(w, row_bytes, n_valid, nb, out);
    case DType::kQ4_K:
      return unpack_q4_k(w, row_bytes, n_valid, nb, out);
    default:
      return unpack_q6_k(w, row_bytes, n_valid, nb, out);
  }
}

// One rows16 group (16 rows; rows16 matrices have no partial groups).
void unpack_group(DType type, const uint8_t* group, int64_t nb, uint8_t* out) {
  switch (type) {
    case DType::kQ4_0:
      return unpack_q4_0_rows16(group, nb, out);
    case DType::kQ8_0:
      return unpack_q8_0_rows16(group, nb, out);
    case DType::kQ4_K:
      return unpack_q4_k_rows16(group, nb, out);
    default:
      return unpack_q6_k_rows16(group, nb, out);
  }
}

// Rows [row0, row0 + 16) of w (fewer at the end), in either layout. rows16 weights (repack.h):
// the 16-row tile is one group, unpacked into the same tile bytes as its GGUF rows give, so the
// results are those of the GGUF layout.
void unpack_tile(const WeightMatrix& w, const Plan& p, int64_t row0, uint8_t* out) {
  const uint8_t* src =
      static_cast<const uint8_t*>(w.data) + static_cast<size_t>(row0) * w.row_bytes;
  if (w.layout == WeightLayout::kRows16) return unpack_group(w.type, src, p.n_blocks, out);
  const int valid = static_cast<int>(std::min<int64_t>(kTile, w.rows - row0));
  unpack(w.type, src, w.row_bytes, valid, p.n_blocks, out);
}

void prepare_token(DType type, const void* a_quant, int64_t nb, int slot, uint8_t* mtile) {
  switch (type) {
    case DType::kQ4_0:
    case DType::kQ8_0:
      return prepare_block32_token(static_cast<const BlockQ8_0*>(a_quant), nb, slot, mtile);
    case DType::kQ4_K:
      return prepare_kquant_token<true>(static_cast<const BlockQ8_K*>(a_quant), nb, slot, mtile);
    default:
      return prepare_kquant_token<false>(static_cast<const BlockQ8_K*>(a_quant), nb, slot, mtile);
  }
}

// Products of n_nt n-tiles (unpacked at w[]) with n_mt m-tiles (prepared at a[]).
void run_tiles(const Plan& p, int n_nt, int n_mt, const uint8_t* const* w, const uint8_t* const* a,
               AccTile* acc) {
  if (p.kquant) {
    if (p.q4k) {
      return n_mt == 2 ? run_kquant<true, 2>(w[0], a, p.n_blocks, acc)
                       : run_kquant<true, 1>(w[0], a, p.n_blocks, acc);
    }
    return n_mt == 2 ? run_kquant<false, 2>(w[0], a, p.n_blocks, acc)
                     : run_kquant<false, 1>(w[0], a, p.n_blocks, acc);
  }
  if (n_nt == 2) {
    return n_mt == 2 ? run_block32<2, 2>(w, a, p.n_blocks, acc)
                     : run_block32<2, 1>(w, a, p.n_blocks, acc);
  }
  return n_mt == 2 ? run_block32<1, 2>(w, a, p.n_blocks, acc)
                   : run_block32<1, 1>(w, a, p.n_blocks, acc);
}

}  // namespace

size_t amx_unpacked_tile_bytes(const WeightMatrix& w) {
  return make_plan(w).weight_bytes;
}

void amx_unpack_tile(const WeightMatrix& w, int64_t row0, uint8_t* out) {
  unpack_tile(w, make_plan(w), row0, out);
}

size_t amx_scratch_bytes(const WeightMatrix& w, int64_t n_tokens) {
  const Plan p = make_plan(w);
  const int64_t n_mt = (n_tokens + kTile - 1) / kTile;
  return p.act_bytes * static_cast<size_t>(n_mt) + kAlign;
}

void amx_matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool,
                void* scratch) {
  const Plan p = make_plan(w);
  const DType act = activation_type(w.type);
  const int64_t n_mt = (n_tokens + kTile - 1) / kTile;

  // 1. Activations: quantized per token, scattered into the B tiles of its m-tile; padding
  // tokens of the last m-tile stay zero (zero scale too), so they add exactly +0.
  AlignedBuffer owned;
  const size_t need = amx_scratch_bytes(w, n_tokens);
  if (scratch == nullptr || matmul_scratch_bytes(w, n_tokens) < need) {
    owned = make_buffer(need);
    scratch = owned.get();
  }
  uint8_t* prep = align_ptr(scratch);
  const size_t q_row_bytes = dtype_row_bytes(act, static_cast<uint64_t>(w.cols));
  pool.parallel_for_ref(n_mt, 1, [&](int64_t mt0, int64_t mt1) {
    std::vector<uint8_t> q(q_row_bytes);
    for (int64_t mt = mt0; mt < mt1; ++mt) {
      uint8_t* mtile = prep + static_cast<size_t>(mt) * p.act_bytes;
      std::memset(mtile, 0, p.act_bytes);
      for (int slot = 0; slot < kTile; ++slot) {
        const int64_t t = mt * kTile + slot;
        if (t >= n_tokens) break;
        quantize_activation(act, x + t * w.cols, q.data(), w.cols, SimdLevel::kAvx512);
        prepare_token(w.type, q.data(), p.n_blocks, slot, mtile);
      }
    }
  });

  // 2. Chunks of n-tiles from a shared counter; each thread unpacks a chunk's weights once and
  // runs every m-tile over them.
  const int64_t chunk_rows = kTile * p.n_tiles_per_chunk;
  const int64_t n_chunks = (w.rows + chunk_rows - 1) / chunk_rows;
  std::atomic<int64_t> next{0};
  pool.run_ref([&](int, int) {
    if (next.load(std::memory_order_relaxed) >= n_chunks) return;
    configure_tiles(p.kquant ? 64 : 32);
    AlignedBuffer wbuf = make_buffer(p.weight_bytes * static_cast<size_t>(p.n_tiles_per_chunk));
    alignas(64) AccTile acc[4];
    for (;;) {
      const int64_t c = next.fetch_add(1, std::memory_order_relaxed);
      if (c >= n_chunks) break;
      const int64_t r0 = c * chunk_rows;
      const int64_t rows_left = std::min(chunk_rows, w.rows - r0);
      const int n_nt = static_cast<int>((rows_left + kTile - 1) / kTile);
      const uint8_t* wt[2] = {wbuf.get(), wbuf.get() + p.weight_bytes};
      for (int i = 0; i < n_nt; ++i) {
        unpack_tile(w, p, r0 + i * kTile, wbuf.get() + i * p.weight_bytes);
      }
      for (int64_t mt = 0; mt < n_mt; mt += 2) {
        const int m_count = static_cast<int>(std::min<int64_t>(2, n_mt - mt));
        const uint8_t* at[2] = {prep + static_cast<size_t>(mt) * p.act_bytes,
                                prep + static_cast<size_t>(mt + 1) * p.act_bytes};
        std::memset(acc, 0, sizeof(acc));
        run_tiles(p, n_nt, m_count, wt, at, acc);
        for (int i = 0; i < n_nt; ++i) {
          const int64_t n0 = r0 + i * kTile;
          const int rv = static_cast<int>(std::min<int64_t>(kTile, w.rows - n0));
          for (int j = 0; j < m_count; ++j) {
            const int64_t t0 = (mt + j) * kTile;
            const int tv = static_cast<int>(std::min<int64_t>(kTile, n_tokens - t0));
            // Column t of the tile (16 rows of token t) is one contiguous piece of y.
            const AccTile& tile = acc[i * m_count + j];
            const __m512i col = _mm512_mullo_epi32(
                _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                _mm512_set1_epi32(kTile));
            const __mmask16 rmask = static_cast<__mmask16>((1u << rv) - 1);
            for (int t = 0; t < tv; ++t) {
              const __m512 v = _mm512_i32gather_ps(col, &tile[0][t], 4);
              _mm512_mask_storeu_ps(y + (t0 + t) * w.rows + n0, rmask, v);
            }
          }
        }
      }
    }
    _tile_release();
  });
}

}  // namespace enclave::kernels::detail

#undef TMM_A0
#undef TMM_A1
#undef TMM_B0
#undef TMM_B1
#undef TMM_C0
#undef TMM_C1
#undef TMM_C2
#undef TMM_C3
