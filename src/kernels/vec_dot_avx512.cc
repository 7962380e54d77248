// AVX-512 (F/BW/VL + VNNI) kernels. The shared 256-bit kernels are compiled here with vpdpbusd;
// the hot types (Q4_0, Q8_0, F32/F16/BF16) get full 512-bit kernels and matmul tile kernels.
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "core/fp16.h"
#include "kernels/quant_blocks.h"
#include "kernels/vec_dot_impl.h"

namespace enclave::kernels::detail {
namespace {
#define ENCLAVE_VNNI256 1
#include "kernels/vec_dot_x86.inc"
#undef ENCLAVE_VNNI256

inline float hsum512(__m512 v) {
  return _mm512_reduce_add_ps(v);
}

template <int kKind>  // 0 f32, 1 f16, 2 bf16
inline __m512 load16(const void* base, int64_t i) {
  if constexpr (kKind == 0) return _mm512_loadu_ps(static_cast<const float*>(base) + i);
  if constexpr (kKind == 1) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(
        reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(base) + i)));
  }
  if constexpr (kKind == 2) {
    const __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256(
        reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(base) + i)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
  }
}

template <int kKind>
float dot_float_512(const void* wp, const void* ap, int64_t n) {
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                   _mm512_setzero_ps()};
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    for (int k = 0; k < 4; ++k) {
      acc[k] =
          _mm512_fmadd_ps(load16<kKind>(wp, i + 16 * k), load16<kKind>(ap, i + 16 * k), acc[k]);
    }
  }
  for (; i + 16 <= n; i += 16)
    acc[0] = _mm512_fmadd_ps(load16<kKind>(wp, i), load16<kKind>(ap, i), acc[0]);
  float sum = hsum512(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
  if (i < n) {
    // Tail through the 256-bit kernel (handles < 16 elements including scalar leftovers).
    const size_t elem = kKind == 0 ? 4 : 2;
    sum += dot_float_x86<kKind>(static_cast<const char*>(wp) + i * elem,
                                static_cast<const char*>(ap) + i * elem, n - i);
  }
  return sum;
}

// Two Q4_0 blocks -> 64 unsigned nibbles in element order (block 0 then block 1).
inline __m512i q4_0_pair(const BlockQ4_0* w) {
  const __m256i q = _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[0].qs))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[1].qs)), 1);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i lo = _mm256_and_si256(q, m4);                        // [b0 lo | b1 lo]
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);  // [b0 hi | b1 hi]
  const __m512i x = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
  return _mm512_shuffle_i64x2(x, x, _MM_SHUFFLE(3, 1, 2, 0));
}

template <typename Block>
inline __m512i act_pair(const Block* a) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(load256(a[0].qs)), load256(a[1].qs), 1);
}

inline __m512 scale_pair(float d0, float d1) {
  return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_set1_ps(d0)),
                                             _mm256_castps_pd(_mm256_set1_ps(d1)), 1));
}

// sum(q_u * a) - 8 * sum(a) per 4 bytes: the Q4_0 -8 offset applied exactly in integers.
inline __m512i q4_0_mul(__m512i q_u, __m512i a) {
  const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q_u, a);
  const __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(8), a);
  return _mm512_sub_epi32(p, s);
}

// Signed x signed bytes: |w| via abs and the sign moved onto a (AVX-512BW has no vpsignb).
inline __m512i i8_mul(__m512i w, __m512i a) {
  const __m512i aw = _mm512_abs_epi8(w);
  const __mmask64 neg = _mm512_movepi8_mask(w);
  const __m512i sa = _mm512_mask_sub_epi8(a, neg, _mm512_setzero_si512(), a);
  return _mm512_dpbusd_epi32(_mm512_setzero_si512(), aw, sa);
}

// One accumulator, two blocks per step: the tile kernels below reproduce exactly this sequence
// per (row, token), so matrix-matrix and matrix-vector results are bit-identical.
template <bool kQ4>
inline __m512i pair_product(const void* w, const BlockQ8_0* a) {
  if constexpr (kQ4)
    return q4_0_mul(q4_0_pair(static_cast<const BlockQ4_0*>(w)), act_pair(a));
  else
    return i8_mul(act_pair(static_cast<const BlockQ8_0*>(w)), act_pair(a));
}

template <bool kQ4>
float dot_q4_0_q8_0_512(const void* wp, const void* ap, int64_t n) {
  using WB = std::conditional_t<kQ4, BlockQ4_0, BlockQ8_0>;
  const auto* w = static_cast<const WB*>(wp);
  const auto* a = static_cast<const BlockQ8_0*>(ap);
  const int64_t nb = n / kQK8_0;
  __m512 acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    const __m512 d = scale_pair(h2f(w[i].d) * h2f(a[i].d), h2f(w[i + 1].d) * h2f(a[i + 1].d));
    acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(pair_product<kQ4>(w + i, a + i)), acc);
  }
  float sum = hsum512(acc);
  if (i < nb) {
    if constexpr (kQ4)
      sum += dot_q4_0_x86(w + i, a + i, kQK8_0);
    else
      sum += dot_q8_0_x86(w + i, a + i, kQK8_0);
  }
  return sum;
}

// Up to 4 rows x 4 tokens: weights unpacked once per block pair and reused for every token,
// activations loaded once and reused for every row.
template <bool kQ4>
void tile_q4_0_q8_0_512(const void* wp, size_t w_stride, int n_rows, const void* ap,
                        size_t a_stride, int n_tok, float* out, size_t out_stride, int64_t n) {
  using WB = std::conditional_t<kQ4, BlockQ4_0, BlockQ8_0>;
  if (n_rows != 4 || n_tok != 4) {
    for (int r = 0; r < n_rows; ++r) {
      for (int t = 0; t < n_tok; ++t) {
        out[t * out_stride + r] =
            dot_q4_0_q8_0_512<kQ4>(static_cast<const uint8_t*>(wp) + r * w_stride,
                                   static_cast<const uint8_t*>(ap) + t * a_stride, n);
      }
    }
    return;
  }
  const WB* w[4];
  const BlockQ8_0* a[4];
  for (int r = 0; r < 4; ++r)
    w[r] = reinterpret_cast<const WB*>(static_cast<const uint8_t*>(wp) + r * w_stride);
  for (int t = 0; t < 4; ++t)
    a[t] = reinterpret_cast<const BlockQ8_0*>(static_cast<const uint8_t*>(ap) + t * a_stride);
  const int64_t nb = n / kQK8_0;
  __m512 acc[4][4];
  for (auto& row : acc)
    for (auto& v : row) v = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    __m512i wq[4];
    float dw0[4], dw1[4];
    for (int r = 0; r < 4; ++r) {
      if constexpr (kQ4) {
        wq[r] = q4_0_pair(w[r] + i);
      } else {
        wq[r] = act_pair(w[r] + i);
      }
      dw0[r] = h2f(w[r][i].d);
      dw1[r] = h2f(w[r][i + 1].d);
    }
    for (int t = 0; t < 4; ++t) {
      const __m512i av = act_pair(a[t] + i);
      const float da0 = h2f(a[t][i].d), da1 = h2f(a[t][i + 1].d);
      if constexpr (kQ4) {
        const __m512i s8 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(8), av);
        for (int r = 0; r < 4; ++r) {
          const __m512i p =
              _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), wq[r], av), s8);
          acc[r][t] = _mm512_fmadd_ps(scale_pair(dw0[r] * da0, dw1[r] * da1), _mm512_cvtepi32_ps(p),
                                      acc[r][t]);
        }
      } else {
        for (int r = 0; r < 4; ++r) {
          acc[r][t] = _mm512_fmadd_ps(scale_pair(dw0[r] * da0, dw1[r] * da1),
                                      _mm512_cvtepi32_ps(i8_mul(wq[r], av)), acc[r][t]);
        }
      }
    }
  }
  for (int r = 0; r < 4; ++r) {
    for (int t = 0; t < 4; ++t) {
      float sum = hsum512(acc[r][t]);
      if (i < nb) {
        if constexpr (kQ4)
          sum += dot_q4_0_x86(w[r] + i, a[t] + i, kQK8_0);
        else
          sum += dot_q8_0_x86(w[r] + i, a[t] + i, kQK8_0);
      }
      out[t * out_stride + r] = sum;
    }
  }
}

}  // namespace

VecDotFn avx512_vec_dot(DType weight_type) {
  switch (weight_type) {
    case DType::kF32:
      return dot_float_512<0>;
    case DType::kF16:
      return dot_float_512<1>;
    case DType::kBF16:
      return dot_float_512<2>;
    case DType::kQ4_0:
      return dot_q4_0_q8_0_512<true>;
    case DType::kQ8_0:
      return dot_q4_0_q8_0_512<false>;
    default:
      return x86_vec_dot(weight_type);
  }
}

QuantizeActFn avx512_quantize(DType act_type) {
  return x86_quantize(act_type);
}

VecDotTileFn avx512_vec_dot_tile(DType weight_type) {
  switch (weight_type) {
    case DType::kQ4_0:
      return tile_q4_0_q8_0_512<true>;
    case DType::kQ8_0:
      return tile_q4_0_q8_0_512<false>;
    default:
      return nullptr;
  }
}

}  // namespace enclave::kernels::detail
