// AVX-512 (BW + VNNI) row-block x token-block kernels for Q4_0, Q8_0, Q4_K and Q6_K weights on the
// GGUF layout (no repacking). The quantized activation (Q8_0 / Q8_K) is first "prepared" once per
// call into a layout that matches how the kernel unpacks one "quad" of weights (four 32-element
// blocks, or one 256-element super-block) at a time, with offset corrections and scales
// precomputed. Per quad and row the weight bytes are unpacked once (nibbles, high bits, f16 and
// 6-bit scales) and reused for every token of the tile; per (row, token) only the integer dot
// products and a few float ops remain. Every (row, token) result follows the same operation
// sequence whatever the tile shape, so matrix-vector, matrix-matrix and vec_dot give identical
// bits.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "core/fp16.h"
#include "kernels/quant_blocks.h"
#include "kernels/vec_dot_impl.h"

namespace enclave::kernels::detail {
namespace {

constexpr int kQuadBlocks = 4;
#ifndef ENCLAVE_PREFETCH_BLOCKS
#define ENCLAVE_PREFETCH_BLOCKS 1
#endif
// Software prefetch distance in row blocks (see accumulate).
constexpr int kPrefetchBlocks = ENCLAVE_PREFETCH_BLOCKS;

inline float half_to_float(uint16_t h) {
  return _cvtsh_ss(h);
}

inline float load_f32(const uint8_t* p) {
  float f;
  std::memcpy(&f, p, 4);
  return f;
}

// ---- Q4_0 -------------------------------------------------------------------------------------
// Prepared quad (256 bytes): a_lo[64] = elements 0..15 of blocks 0..3, a_hi[64] = elements
// 16..31, neg[16] int32 = -8 * (sum of the lane's 4 a_lo + 4 a_hi bytes), da[16] f32 (block
// l / 4's activation scale for lane l).
struct Q4_0Traits {
  using ActBlock = BlockQ8_0;
  static constexpr int kBlockElems = 32;
  static constexpr int kBlocksPerQuad = kQuadBlocks;
  static constexpr size_t kQuadBytes = kQuadBlocks * sizeof(BlockQ4_0);  // 72
  static constexpr size_t kPrepQuadBytes = 256;

  static void prepare_quad(const BlockQ8_0* a, int n_blocks, uint8_t* out) {
    int8_t lo[64] = {}, hi[64] = {};
    int32_t neg[16];
    float da[16];
    for (int b = 0; b < n_blocks; ++b) {
      std::memcpy(lo + 16 * b, a[b].qs, 16);
      std::memcpy(hi + 16 * b, a[b].qs + 16, 16);
    }
    for (int l = 0; l < 16; ++l) {
      int s = 0;
      for (int k = 0; k < 4; ++k) s += lo[4 * l + k] + hi[4 * l + k];
      neg[l] = -8 * s;
      da[l] = l / 4 < n_blocks ? half_to_float(a[l / 4].d) : 0.0f;
    }
    std::memcpy(out, lo, 64);
    std::memcpy(out + 64, hi, 64);
    std::memcpy(out + 128, neg, 64);
    std::memcpy(out + 192, da, 64);
  }

  struct W {
    __m512i lo, hi;
    __m512 dw;
  };
  static W load(const uint8_t* p) {
    // Block b's qs are words 9b+1 .. 9b+8 of the 72 bytes; its scale is word 9b.
    const __m512i idx_qs =
        _mm512_set_epi16(35, 34, 33, 32, 31, 30, 29, 28, 26, 25, 24, 23, 22, 21, 20, 19, 17, 16, 15,
                         14, 13, 12, 11, 10, 8, 7, 6, 5, 4, 3, 2, 1);
    const __m512i idx_d = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 27, 27,
                                           27, 27, 18, 18, 18, 18, 9, 9, 9, 9, 0, 0, 0, 0);
    const __m512i z0 = _mm512_loadu_si512(p);
    const __m512i z1 =
        _mm512_zextsi128_si512(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 64)));
    const __m512i qs = _mm512_permutex2var_epi16(z0, idx_qs, z1);
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    W w;
    w.lo = _mm512_and_si512(qs, m4);
    w.hi = _mm512_and_si512(_mm512_srli_epi16(qs, 4), m4);
    w.dw = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(idx_d, z0)));
    return w;
  }
  static __m512 step(const W& w, const uint8_t* a, __m512 acc) {
    __m512i p = _mm512_loadu_si512(a + 128);
    p = _mm512_dpbusd_epi32(p, w.lo, _mm512_loadu_si512(a));
    p = _mm512_dpbusd_epi32(p, w.hi, _mm512_loadu_si512(a + 64));
    const __m512 d = _mm512_mul_ps(w.dw, _mm512_loadu_ps(reinterpret_cast<const float*>(a + 192)));
    return _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(p), acc);
  }
};

// ---- Q8_0 -------------------------------------------------------------------------------------
// Weights w are used as unsigned w + 128 (xor 0x80); sum((w + 128) a) - 128 sum(a) = sum(w a).
// Prepared quad (384 bytes): a01[64] (blocks 0,1), a23[64], neg01[16], neg23[16] int32
// (-128 * lane sums), da01[16], da23[16] f32.
struct Q8_0Traits {
  using ActBlock = BlockQ8_0;
  static constexpr int kBlockElems = 32;
  static constexpr int kBlocksPerQuad = kQuadBlocks;
  static constexpr size_t kQuadBytes = kQuadBlocks * sizeof(BlockQ8_0);  // 136
  static constexpr size_t kPrepQuadBytes = 384;

  static void prepare_quad(const BlockQ8_0* a, int n_blocks, uint8_t* out) {
    int8_t q[128] = {};
    int32_t neg[32];
    float da[32];
    for (int b = 0; b < n_blocks; ++b) std::memcpy(q + 32 * b, a[b].qs, 32);
    for (int l = 0; l < 32; ++l) {
      int s = 0;
      for (int k = 0; k < 4; ++k) s += q[4 * l + k];
      neg[l] = -128 * s;
      da[l] = l / 8 < n_blocks ? half_to_float(a[l / 8].d) : 0.0f;
    }
    std::memcpy(out, q, 128);
    std::memcpy(out + 128, neg, 128);
    std::memcpy(out + 256, da, 128);
  }

  struct W {
    __m512i q01, q23;
    __m512 d01, d23;
  };
  static W load(const uint8_t* p) {
    // Block b's scale is word 17b of the 136 bytes.
    const __m512i idx_d =
        _mm512_set_epi16(51, 51, 51, 51, 51, 51, 51, 51, 34, 34, 34, 34, 34, 34, 34, 34, 17, 17, 17,
                         17, 17, 17, 17, 17, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i sign = _mm512_set1_epi8(static_cast<char>(0x80));
    auto pair = [&](const uint8_t* x, const uint8_t* y) {
      const __m512i v = _mm512_inserti64x4(
          _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x))),
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y)), 1);
      return _mm512_xor_si512(v, sign);
    };
    W w;
    w.q01 = pair(p + 2, p + 36);
    w.q23 = pair(p + 70, p + 104);
    const __m512i dd =
        _mm512_permutex2var_epi16(_mm512_loadu_si512(p), idx_d, _mm512_loadu_si512(p + 64));
    w.d01 = _mm512_cvtph_ps(_mm512_castsi512_si256(dd));
    w.d23 = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(dd, 1));
    return w;
  }
  static __m512 step(const W& w, const uint8_t* a, __m512 acc) {
    const auto* da = reinterpret_cast<const float*>(a + 256);
    const __m512i p01 =
        _mm512_dpbusd_epi32(_mm512_loadu_si512(a + 128), w.q01, _mm512_loadu_si512(a));
    const __m512i p23 =
        _mm512_dpbusd_epi32(_mm512_loadu_si512(a + 192), w.q23, _mm512_loadu_si512(a + 64));
    acc = _mm512_fmadd_ps(_mm512_mul_ps(w.d01, _mm512_loadu_ps(da)), _mm512_cvtepi32_ps(p01), acc);
    return _mm512_fmadd_ps(_mm512_mul_ps(w.d23, _mm512_loadu_ps(da + 16)), _mm512_cvtepi32_ps(p23),
                           acc);
  }
};

// ---- Q4_K -------------------------------------------------------------------------------------
// One "quad" is one 256-element super-block. Its 128 qs bytes are two 512-bit loads; low and high
// nibbles give four vectors holding sub-blocks {0,2}, {1,3}, {4,6}, {5,7}. The Q8_K activation
// is permuted to the same order once; per (row, token) the sub-block scales are applied in
// integers (vpmaddubsw pairs, then vpmaddwd with the 6-bit scales, unpacked once per row and
// reused for every token), the mins through the activation's pair sums.
// Prepared quad (320 bytes): a[256] in kernel order, bsum[8] int16 (sums of sub-blocks 0..7),
// d f32 at +272.
struct Q4_KTraits {
  using ActBlock = BlockQ8_K;
  static constexpr int kBlockElems = kQK_K;
  static constexpr int kBlocksPerQuad = 1;
  static constexpr size_t kQuadBytes = sizeof(BlockQ4_K);  // 144
  static constexpr size_t kPrepQuadBytes = 320;

  static void prepare_quad(const BlockQ8_K* a, int, uint8_t* out) {
    std::memset(out, 0, kPrepQuadBytes);
    for (int c = 0; c < 2; ++c) {
      const int8_t* src = a->qs + 128 * c;
      uint8_t* dst = out + 128 * c;
      std::memcpy(dst, src, 32);
      std::memcpy(dst + 32, src + 64, 32);
      std::memcpy(dst + 64, src + 32, 32);
      std::memcpy(dst + 96, src + 96, 32);
    }
    int16_t bsum[8];
    for (int j = 0; j < 8; ++j)
      bsum[j] = static_cast<int16_t>(a->bsums[2 * j] + a->bsums[2 * j + 1]);
    std::memcpy(out + 256, bsum, sizeof(bsum));
    std::memcpy(out + 272, &a->d, 4);
  }

  struct W {
    __m512i q[4];
    __m512i sc[4];
    __m128i mn;
    __m512 d, dmin;
  };
  static W load(const uint8_t* p) {
    const auto* b = reinterpret_cast<const BlockQ4_K*>(p);
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i z0 = _mm512_loadu_si512(b->qs);
    const __m512i z1 = _mm512_loadu_si512(b->qs + 64);
    W w;
    w.q[0] = _mm512_and_si512(z0, m4);
    w.q[1] = _mm512_and_si512(_mm512_srli_epi16(z0, 4), m4);
    w.q[2] = _mm512_and_si512(z1, m4);
    w.q[3] = _mm512_and_si512(_mm512_srli_epi16(z1, 4), m4);
    uint32_t u[3];
    std::memcpy(u, b->scales, 12);
    const uint32_t sc03 = u[0] & 0x3F3F3F3Fu;
    const uint32_t mn03 = u[1] & 0x3F3F3F3Fu;
    const uint32_t sc47 = (u[2] & 0x0F0F0F0Fu) | (((u[0] >> 6) & 0x03030303u) << 4);
    const uint32_t mn47 = ((u[2] >> 4) & 0x0F0F0F0Fu) | (((u[1] >> 6) & 0x03030303u) << 4);
    const __m256i s16 =
        _mm256_cvtepu8_epi16(_mm_set_epi32(static_cast<int>(mn47), static_cast<int>(mn03),
                                           static_cast<int>(sc47), static_cast<int>(sc03)));
    const __m512i s = _mm512_castsi256_si512(s16);
    // Vector k holds sub-blocks (j0, j1) in its two 256-bit halves.
    constexpr int kSub[4][2] = {{0, 2}, {1, 3}, {4, 6}, {5, 7}};
    for (int k = 0; k < 4; ++k) {
      const __m512i idx =
          _mm512_inserti64x4(_mm512_set1_epi16(static_cast<int16_t>(kSub[k][0])),
                             _mm256_set1_epi16(static_cast<int16_t>(kSub[k][1])), 1);
      w.sc[k] = _mm512_permutexvar_epi16(idx, s);
    }
    w.mn = _mm256_extracti128_si256(s16, 1);
    w.d = _mm512_set1_ps(half_to_float(b->d));
    w.dmin = _mm512_set1_ps(half_to_float(b->dmin));
    return w;
  }
  static __m512 step(const W& w, const uint8_t* a, __m512 acc) {
    __m512i isum = _mm512_madd_epi16(_mm512_maddubs_epi16(w.q[0], _mm512_loadu_si512(a)), w.sc[0]);
    for (int k = 1; k < 4; ++k) {
      isum = _mm512_add_epi32(
          isum,
          _mm512_madd_epi16(_mm512_maddubs_epi16(w.q[k], _mm512_loadu_si512(a + 64 * k)), w.sc[k]));
    }
    const __m512 da = _mm512_set1_ps(load_f32(a + 272));
    acc = _mm512_fmadd_ps(_mm512_mul_ps(w.d, da), _mm512_cvtepi32_ps(isum), acc);
    const __m128i m =
        _mm_madd_epi16(w.mn, _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + 256)));
    return _mm512_fnmadd_ps(_mm512_mul_ps(w.dmin, da),
                            _mm512_cvtepi32_ps(_mm512_zextsi128_si512(m)), acc);
  }
};

// ---- Q6_K -------------------------------------------------------------------------------------
// One quad is one super-block. Per half n the 64 ql bytes are one load whose low nibbles are
// elements 128n + 0..63 and high nibbles 128n + 64..127, in element order; the two high bits come
// from the half's 32 qh bytes (broadcast to both 256-bit halves, shifted per half). Values are
// q - 32 with q in [0, 63]: sum(sc * q * a) in integers (vpmaddubsw + vpmaddwd with the int8
// scales), minus 32 * sum(sc * bsum) through the activation's 16-element sums.
// Prepared quad (320 bytes): a[256] as is, bsum[16] int16 at +256, d f32 at +288.
struct Q6_KTraits {
  using ActBlock = BlockQ8_K;
  static constexpr int kBlockElems = kQK_K;
  static constexpr int kBlocksPerQuad = 1;
  static constexpr size_t kQuadBytes = sizeof(BlockQ6_K);  // 210
  static constexpr size_t kPrepQuadBytes = 320;

  static void prepare_quad(const BlockQ8_K* a, int, uint8_t* out) {
    std::memset(out, 0, kPrepQuadBytes);
    std::memcpy(out, a->qs, 256);
    std::memcpy(out + 256, a->bsums, 32);
    std::memcpy(out + 288, &a->d, 4);
  }

  struct W {
    __m512i q[4];
    __m512i sc[4];
    __m256i nsc;  // -32 * scales, int16
    __m512 d;
  };
  static W load(const uint8_t* p) {
    const auto* b = reinterpret_cast<const BlockQ6_K*>(p);
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i m30 = _mm512_set1_epi8(0x30);
    // Per 256-bit half: the low-nibble vector needs qh bits (0,1) then (2,3) at bits 4,5; the
    // high-nibble vector bits (4,5) then (6,7).
    const __m512i shl_lo = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
    const __m512i shr_hi = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    W w;
    for (int n = 0; n < 2; ++n) {
      const __m512i l = _mm512_loadu_si512(b->ql + 64 * n);
      const __m512i h = _mm512_broadcast_i64x4(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qh + 32 * n)));
      const __m512i hl = _mm512_and_si512(_mm512_sllv_epi16(h, shl_lo), m30);
      const __m512i hh = _mm512_and_si512(_mm512_srlv_epi16(h, shr_hi), m30);
      w.q[2 * n] = _mm512_or_si512(_mm512_and_si512(l, m4), hl);
      w.q[2 * n + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4), hh);
    }
    const __m256i s16 =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b->scales)));
    const __m512i s = _mm512_castsi256_si512(s16);
    // Vector k (q[k]) covers scales 4k .. 4k+3, eight int16 lanes each.
    for (int k = 0; k < 4; ++k) {
      const __m512i idx = _mm512_set_epi64(0x0003000300030003LL + 0x0004000400040004LL * k,
                                           0x0003000300030003LL + 0x0004000400040004LL * k,
                                           0x0002000200020002LL + 0x0004000400040004LL * k,
                                           0x0002000200020002LL + 0x0004000400040004LL * k,
                                           0x0001000100010001LL + 0x0004000400040004LL * k,
                                           0x0001000100010001LL + 0x0004000400040004LL * k,
                                           0x0000000000000000LL + 0x0004000400040004LL * k,
                                           0x0000000000000000LL + 0x0004000400040004LL * k);
      w.sc[k] = _mm512_permutexvar_epi16(idx, s);
    }
    w.nsc = _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(s16, 5));
    w.d = _mm512_set1_ps(half_to_float(b->d));
    return w;
  }
  static __m512 step(const W& w, const uint8_t* a, __m512 acc) {
    __m512i isum = _mm512_madd_epi16(_mm512_maddubs_epi16(w.q[0], _mm512_loadu_si512(a)), w.sc[0]);
    for (int k = 1; k < 4; ++k) {
      isum = _mm512_add_epi32(
          isum,
          _mm512_madd_epi16(_mm512_maddubs_epi16(w.q[k], _mm512_loadu_si512(a + 64 * k)), w.sc[k]));
    }
    const __m256i bias =
        _mm256_madd_epi16(w.nsc, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + 256)));
    isum = _mm512_add_epi32(isum, _mm512_zextsi256_si512(bias));
    const __m512 da = _mm512_set1_ps(load_f32(a + 288));
    return _mm512_fmadd_ps(_mm512_mul_ps(w.d, da), _mm512_cvtepi32_ps(isum), acc);
  }
};

template <typename Tr>
size_t prep_bytes(int64_t n) {
  const int64_t nb = n / Tr::kBlockElems;
  return static_cast<size_t>((nb + Tr::kBlocksPerQuad - 1) / Tr::kBlocksPerQuad) *
         Tr::kPrepQuadBytes;
}

template <typename Tr>
void prepare(const void* a_quant, void* prep, int64_t n) {
  const auto* a = static_cast<const typename Tr::ActBlock*>(a_quant);
  auto* out = static_cast<uint8_t*>(prep);
  const int64_t nb = n / Tr::kBlockElems;
  for (int64_t b = 0; b < nb; b += Tr::kBlocksPerQuad, out += Tr::kPrepQuadBytes) {
    Tr::prepare_quad(a + b, static_cast<int>(std::min<int64_t>(Tr::kBlocksPerQuad, nb - b)), out);
  }
}

// acc[r][t] += quads [0, n_quads) of weight rows r and prepared tokens t.
// Prefetch: the R rows are adjacent in memory (w_stride is the row size), so the block is one
// contiguous range that the kernel reads as R interleaved streams, which the hardware prefetcher
// (one stream per page) follows badly. Instead, each step prefetches the next R * kQuadBytes bytes
// of the range `pf` (the following row blocks), at the rate the current block is consumed.
template <typename Tr, int R, int T, bool kPrefetch = true>
inline void accumulate(const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride,
                       int64_t n_quads, __m512 (&acc)[R][T], const uint8_t* pf = nullptr) {
  constexpr size_t kStepBytes = R * Tr::kQuadBytes;
  uintptr_t pf_line = reinterpret_cast<uintptr_t>(pf) & ~uintptr_t{63};
  const uintptr_t pf_start = reinterpret_cast<uintptr_t>(pf);
  for (int64_t q = 0; q < n_quads; ++q) {
    const uint8_t* wq = w + q * Tr::kQuadBytes;
    const uint8_t* aq = a + q * Tr::kPrepQuadBytes;
    if constexpr (kPrefetch) {
      const uintptr_t end = pf_start + static_cast<uintptr_t>(q + 1) * kStepBytes;
      for (; pf_line < end; pf_line += 64)
        _mm_prefetch(reinterpret_cast<const char*>(pf_line), _MM_HINT_T1);
    }
    // Unrolled so that the R x T accumulators stay in registers.
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const typename Tr::W wr = Tr::load(wq + r * w_stride);
      for (int t = 0; t < T; ++t) acc[r][t] = Tr::step(wr, aq + t * a_stride, acc[r][t]);
    }
  }
}

template <typename Tr, int R, int T>
void block_kernel(const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride, float* out,
                  size_t out_stride, int64_t n) {
  const int64_t nb = n / Tr::kBlockElems;
  const int64_t full = nb / Tr::kBlocksPerQuad;
  const int tail = static_cast<int>(nb % Tr::kBlocksPerQuad);
  __m512 acc[R][T];
  for (auto& row : acc)
    for (auto& v : row) v = _mm512_setzero_ps();
  accumulate<Tr, R, T>(w, w_stride, a, a_stride, full, acc, w + kPrefetchBlocks * R * w_stride);
  if (tail != 0) {
    // The last partial quad from a zero-padded copy (never read past the row); zero scales
    // and zero activations make the padding contribute exactly +0.
    alignas(64) uint8_t pad[R][Tr::kQuadBytes + 64];
    const size_t bb = Tr::kQuadBytes / Tr::kBlocksPerQuad;
    for (int r = 0; r < R; ++r) {
      std::memset(pad[r], 0, sizeof(pad[r]));
      std::memcpy(pad[r], w + r * w_stride + full * Tr::kQuadBytes, bb * static_cast<size_t>(tail));
    }
    accumulate<Tr, R, T, false>(&pad[0][0], sizeof(pad[0]), a + full * Tr::kPrepQuadBytes, a_stride,
                                1, acc);
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) out[t * out_stride + r] = _mm512_reduce_add_ps(acc[r][t]);
}

template <typename Tr, int R>
void dispatch_tok(int n_tok, const uint8_t* w, size_t ws, const uint8_t* a, size_t as, float* out,
                  size_t os, int64_t n) {
  switch (n_tok) {
    case 1:
      return block_kernel<Tr, R, 1>(w, ws, a, as, out, os, n);
    case 2:
      return block_kernel<Tr, R, 2>(w, ws, a, as, out, os, n);
    case 3:
      return block_kernel<Tr, R, 3>(w, ws, a, as, out, os, n);
    default:
      return block_kernel<Tr, R, 4>(w, ws, a, as, out, os, n);
  }
}

template <typename Tr>
void run(const void* wp, size_t w_stride, int n_rows, const void* ap, size_t a_stride, int n_tok,
         float* out, size_t out_stride, int64_t n) {
  const auto* w = static_cast<const uint8_t*>(wp);
  const auto* a = static_cast<const uint8_t*>(ap);
  switch (n_rows) {
    case 1:
      return dispatch_tok<Tr, 1>(n_tok, w, w_stride, a, a_stride, out, out_stride, n);
    case 2:
      return dispatch_tok<Tr, 2>(n_tok, w, w_stride, a, a_stride, out, out_stride, n);
    case 3:
      return dispatch_tok<Tr, 3>(n_tok, w, w_stride, a, a_stride, out, out_stride, n);
    default:
      return dispatch_tok<Tr, 4>(n_tok, w, w_stride, a, a_stride, out, out_stride, n);
  }
}

// vec_dot on a raw Q8_0 activation: prepares it in stack-sized pieces, same sequence as run().
template <typename Tr>
float dot(const void* wp, const void* ap, int64_t n) {
  constexpr int64_t kPieceQuads = 32;
  const auto* w = static_cast<const uint8_t*>(wp);
  const auto* a = static_cast<const typename Tr::ActBlock*>(ap);
  const int64_t nb = n / Tr::kBlockElems;
  const int64_t full = nb / Tr::kBlocksPerQuad;
  alignas(64) uint8_t prep[kPieceQuads * Tr::kPrepQuadBytes];
  __m512 acc[1][1] = {{_mm512_setzero_ps()}};
  for (int64_t q0 = 0; q0 < full; q0 += kPieceQuads) {
    const int64_t nq = std::min(kPieceQuads, full - q0);
    for (int64_t q = 0; q < nq; ++q)
      Tr::prepare_quad(a + (q0 + q) * Tr::kBlocksPerQuad, Tr::kBlocksPerQuad,
                       prep + q * Tr::kPrepQuadBytes);
    accumulate<Tr, 1, 1, false>(w + q0 * Tr::kQuadBytes, 0, prep, 0, nq, acc);
  }
  const int tail = static_cast<int>(nb % Tr::kBlocksPerQuad);
  if (tail != 0) {
    alignas(64) uint8_t pad[Tr::kQuadBytes + 64] = {};
    std::memcpy(pad, w + full * Tr::kQuadBytes, Tr::kQuadBytes / Tr::kBlocksPerQuad * tail);
    Tr::prepare_quad(a + full * Tr::kBlocksPerQuad, tail, prep);
    accumulate<Tr, 1, 1, false>(pad, 0, prep, 0, 1, acc);
  }
  return _mm512_reduce_add_ps(acc[0][0]);
}

const GemmKernel kQ4_0Gemm = {prep_bytes<Q4_0Traits>, prepare<Q4_0Traits>, run<Q4_0Traits>};
const GemmKernel kQ8_0Gemm = {prep_bytes<Q8_0Traits>, prepare<Q8_0Traits>, run<Q8_0Traits>};
const GemmKernel kQ4_KGemm = {prep_bytes<Q4_KTraits>, prepare<Q4_KTraits>, run<Q4_KTraits>};
const GemmKernel kQ6_KGemm = {prep_bytes<Q6_KTraits>, prepare<Q6_KTraits>, run<Q6_KTraits>};

}  // namespace

const GemmKernel* avx512_gemm(DType weight_type) {
  switch (weight_type) {
    case DType::kQ4_0:
      return &kQ4_0Gemm;
    case DType::kQ8_0:
      return &kQ8_0Gemm;
    case DType::kQ4_K:
      return &kQ4_KGemm;
    case DType::kQ6_K:
      return &kQ6_KGemm;
    default:
      return nullptr;
  }
}

VecDotFn avx512_gemm_dot(DType weight_type) {
  switch (weight_type) {
    case DType::kQ4_0:
      return dot<Q4_0Traits>;
    case DType::kQ8_0:
      return dot<Q8_0Traits>;
    case DType::kQ4_K:
      return dot<Q4_KTraits>;
    case DType::kQ6_K:
      return dot<Q6_KTraits>;
    default:
      return nullptr;
  }
}

}  // namespace enclave::kernels::detail
