// AVX-512 VNNI kernels for rows16 matrices (repack.h): lane r of every vector is row r of the
// 16-row group, so one vpdpbusd with 4 activation bytes broadcast advances 16 rows and every lane
// ends as one row's sum. Weights are unpacked once per block and reused by every token. Each
// kernel follows its scalar reference's per-(row, token) sequence (repack.cc), so the bits agree.
//   Q4_0: 4 low-nibble vectors and 4 vectors of 16 x the high nibble (a mask, no shift; the sum
//         is shifted back once), 8 vpdpbusd per token and block.
//   Q8_0: the 8 excess-128 quant vectors as they are, 8 vpdpbusd per token and block.
//   Q4_K: per super-block 64 vpdpbusd per token into the 8 sub-block sums (high nibbles as a
//         mask, as Q4_0), the 6-bit scales and mins unpacked per lane, scales applied with
//         vpmulld and mins with 4 vpdpwssd.
//   Q6_K: the 6-bit quants, recoded at repack (q6_recode), rebuilt in 8 ops per 4 vectors, 64
//         vpdpbusd per token into 16 sub-block sums that start at the token's correction, scaled
//         with vpmulld.
// Every loop is unrolled (GCC otherwise keeps the small vector arrays in memory: Q6_K ran at
// half speed).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/quant_blocks.h"
#include "kernels/repack.h"
#include "kernels/vec_dot_impl.h"

namespace enclave::kernels::detail {
namespace {

// Software prefetch distance: a group is one contiguous stream, and asking for the lines 2 KiB
// ahead keeps more misses in flight than the hardware prefetcher alone (matrix-vector, 2 threads,
// 1536x8960: 21.4-22.9 -> 23.7-24.9 GB/s; 4 tokens +20-30 %; T1 hints measured the same, 4 KiB
// the same for one token and 10-15 % slower for 4-token Q4_K batches).
constexpr int kPrefetchBytes = 2048;

// Prefetch address `dist` bytes past p; past the end of p's group (`end`) the stream continues in
// the group it reads in the next call, `skip` bytes further on (Streams::skip). (Prefetching the
// bytes just after a group, which another stream had already read, left the start of every next
// run cold: 1536-column matrices, whose groups are only 13.8 KiB, ran ~15 % slower.) Kernels
// whose reads jump within a block use the distance to the same step of the next block.
inline const char* next_at(const uint8_t* p, size_t dist, const uint8_t* end, size_t skip) {
  const uint8_t* t = p + dist;
  return reinterpret_cast<const char*>(t < end ? t : t + skip);
}
inline const char* prefetch_at(const uint8_t* p, const uint8_t* end, size_t skip) {
  return next_at(p, kPrefetchBytes, end, skip);
}

// Prefetch of the per-row scales ("tails", `tail_block` bytes per block at `tails`) that block j
// will read: in this group or, from its last block on, in the group the next call reads (`next`
// bytes on). The tails are a second, sparse stream the hardware prefetcher picks up late: each
// group started with a miss (1536-column matrices, 13-20 KiB groups, paid it most).
inline void prefetch_tail(const uint8_t* tails, int64_t j, int64_t nb, size_t tail_block,
                          size_t next) {
  const uint8_t* p = j < nb ? tails + static_cast<size_t>(j) * tail_block
                            : tails + next + static_cast<size_t>(j - nb) * tail_block;
  _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0);
}

// Where the G groups of a multi-group call lie: group g at base + g * stride (stride = group_bytes
// when they are adjacent), its outputs at out + g * out_step. `skip` and `next` locate the group
// the same stream reads in the next call: adjacent groups continue G groups on, split streams
// (stride > group_bytes) with the group right after their own.
struct Streams {
  size_t stride, out_step, skip, next;
  Streams(int g_count, size_t group_bytes, size_t stride_bytes)
      : stride(stride_bytes),
        out_step(kRows16 * (stride_bytes / group_bytes)),
        skip(stride_bytes == group_bytes ? (g_count - 1) * group_bytes : 0),
        next(skip + group_bytes) {}
};

// The fourth quant of recoded Q6_K bytes (q6_recode): bits 0-1 of a, b and c side by side.
inline __m512i q6_fourth(__m512i a, __m512i b, __m512i c) {
  const __m512i m3 = _mm512_set1_epi8(0x03), m0f = _mm512_set1_epi8(0x0F);
  // 0xCA: first operand ? second : third, bit by bit.
  const __m512i ab = _mm512_ternarylogic_epi32(m3, a, _mm512_slli_epi32(b, 2), 0xCA);
  return _mm512_and_si512(_mm512_ternarylogic_epi32(m0f, ab, _mm512_slli_epi32(c, 4), 0xCA),
                          _mm512_set1_epi8(0x3F));
}

inline __m512i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// Q4_0 and Q8_0 (32-element blocks): 8 operand vectors per block, the first four against
// activation bytes 0..15 and the last four against bytes 16..31, in two independent chains
// (halving the dependent vpdpbusd latency). Q4_0's operands are the 4 low-nibble vectors and 4
// vectors of 16 x the high nibble (a mask, no shift; that chain is shifted back once, exactly,
// as it is a multiple of 16); Q8_0's are its 8 excess-128 quant vectors as stored.
template <DType kType, int T>
void block32_group(const uint8_t* group, int64_t nb, const Rows16Token* tok, float* out,
                   size_t out_stride) {
  constexpr bool kQ4 = kType == DType::kQ4_0;
  constexpr int kBlockBytes = kQ4 ? 256 : 512;  // interleaved bytes of one block of 16 rows
  const auto* scales = group + nb * kBlockBytes;
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  __m512 acc[T];
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* qs = group + b * kBlockBytes;
#pragma GCC unroll 16
    for (int k = 0; k < kBlockBytes / 64; ++k)
      _mm_prefetch(reinterpret_cast<const char*>(qs + kPrefetchBytes + 64 * k), _MM_HINT_T0);
    prefetch_tail(scales, b + kPrefetchBytes / kBlockBytes, nb, 32, nb * kBlockBytes + nb * 32);
    __m512i op[8];
#pragma GCC unroll 16
    for (int k = 0; k < kBlockBytes / 64; ++k) {
      const __m512i v = _mm512_loadu_si512(qs + 64 * k);
      if constexpr (kQ4) {
        op[k] = _mm512_and_si512(v, m4);
        op[4 + k] = _mm512_andnot_si512(m4, v);
      } else {
        op[k] = v;
      }
    }
    const __m512 dw =
        _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales + b * 32)));
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
      const int8_t* a = static_cast<const BlockQ8_0*>(tok[t].q)[b].qs;
      __m512i s0 = _mm512_set1_epi32(tok[t].corr[b]);
      __m512i s1 = _mm512_setzero_si512();
#pragma GCC unroll 16
      for (int k = 0; k < 4; ++k) {
        s0 = _mm512_dpbusd_epi32(s0, op[k], bcast4(a + 4 * k));
        s1 = _mm512_dpbusd_epi32(s1, op[4 + k], bcast4(a + 16 + 4 * k));
      }
      if constexpr (kQ4) s1 = _mm512_srai_epi32(s1, 4);
      const __m512 d = _mm512_mul_ps(dw, _mm512_set1_ps(tok[t].da[b]));
      acc[t] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), acc[t]);
    }
  }
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) _mm512_storeu_ps(out + static_cast<size_t>(t) * out_stride, acc[t]);
}

// One token times G adjacent groups: the same per-row sequence as block32_group<.., 1>, but each
// activation broadcast serves every group, and each thread streams G runs at once: fewer uops per
// weight byte for the single-token decode that bounds generation speed (matrix-vector, 2
// threads, G = 2: Q4_0 +2-11 %, Q8_0 +0-4 % weight GB/s).
template <DType kType, int G>
void block32_pair(const uint8_t* group, size_t group_bytes, size_t stride, int64_t nb,
                  const Rows16Token& tok, float* out) {
  constexpr bool kQ4 = kType == DType::kQ4_0;
  constexpr int kBlockBytes = kQ4 ? 256 : 512;
  const Streams st(G, group_bytes, stride);
  const uint8_t* g[G];
  for (int i = 0; i < G; ++i) g[i] = group + i * st.stride;
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const auto* act = static_cast<const BlockQ8_0*>(tok.q);
  __m512 acc[G];
  for (int i = 0; i < G; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const int8_t* a = act[b].qs;
    __m512i s0[G], s1[G];
#pragma GCC unroll 4
    for (int i = 0; i < G; ++i) {
      const uint8_t* qs = g[i] + b * kBlockBytes;
#pragma GCC unroll 16
      for (int k = 0; k < kBlockBytes / 64; ++k)
        _mm_prefetch(prefetch_at(qs + 64 * k, g[i] + group_bytes, st.skip), _MM_HINT_T0);
      prefetch_tail(g[i] + nb * kBlockBytes, b + kPrefetchBytes / kBlockBytes, nb, 32, st.next);
      s0[i] = _mm512_set1_epi32(tok.corr[b]);
      s1[i] = _mm512_setzero_si512();
    }
#pragma GCC unroll 16
    for (int k = 0; k < 4; ++k) {
      const __m512i a0 = bcast4(a + 4 * k), a1 = bcast4(a + 16 + 4 * k);
#pragma GCC unroll 4
      for (int i = 0; i < G; ++i) {
        const uint8_t* qs = g[i] + b * kBlockBytes;
        if constexpr (kQ4) {
          const __m512i v = _mm512_loadu_si512(qs + 64 * k);
          s0[i] = _mm512_dpbusd_epi32(s0[i], _mm512_and_si512(v, m4), a0);
          s1[i] = _mm512_dpbusd_epi32(s1[i], _mm512_andnot_si512(m4, v), a1);
        } else {
          s0[i] = _mm512_dpbusd_epi32(s0[i], _mm512_loadu_si512(qs + 64 * k), a0);
          s1[i] = _mm512_dpbusd_epi32(s1[i], _mm512_loadu_si512(qs + 256 + 64 * k), a1);
        }
      }
    }
    const __m512 da = _mm512_set1_ps(tok.da[b]);
#pragma GCC unroll 4
    for (int i = 0; i < G; ++i) {
      const auto* scales = g[i] + nb * kBlockBytes + b * 32;
      const __m512 dw =
          _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales)));
      if constexpr (kQ4) s1[i] = _mm512_srai_epi32(s1[i], 4);
      acc[i] = _mm512_fmadd_ps(_mm512_mul_ps(dw, da),
                               _mm512_cvtepi32_ps(_mm512_add_epi32(s0[i], s1[i])), acc[i]);
    }
  }
  for (int i = 0; i < G; ++i) _mm512_storeu_ps(out + i * st.out_step, acc[i]);
}

// Byte i (0..3) of every dword, zero-extended.
inline __m512i dword_byte(__m512i v, int i) {
  return _mm512_and_si512(_mm512_srli_epi32(v, 8 * i), _mm512_set1_epi32(0xFF));
}

// T tokens times G adjacent groups (`group_bytes` apart; out + 16g for group g): each activation
// broadcast serves every group. High nibbles are taken as 16 x the nibble (a mask, no shift) and
// their sums shifted back once, exactly.
template <int T, int G = 1>
void q4_k_groups(const uint8_t* group, size_t group_bytes, size_t stride, int64_t nb,
                 const Rows16Token* tok, float* out, size_t out_stride) {
  const Streams st(G, group_bytes, stride);
  constexpr size_t kInter = 16 * 140;  // scales (3 vectors) and qs (32 vectors) per super-block
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const __m512i m6 = _mm512_set1_epi8(0x3F);
  const __m512i m30 = _mm512_set1_epi8(0x30);
  const __m512i pairs = _mm512_set1_epi32(0x00FF00FF);
  __m512 acc[G][T];
#pragma GCC unroll 16
  for (int g = 0; g < G; ++g)
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) acc[g][t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* v[G];
    const uint8_t* end[G];
    __m512i sc_lo[G], sc_hi[G], mn_lo[G], mn_hi[G], isum[G][T];
#pragma GCC unroll 16
    for (int g = 0; g < G; ++g) {
      v[g] = group + g * st.stride + b * kInter;
      end[g] = group + g * st.stride + group_bytes;
      prefetch_tail(group + g * st.stride + nb * kInter, b + 1, nb, 64, st.next);
      const __m512i s0 = _mm512_loadu_si512(v[g]), s1 = _mm512_loadu_si512(v[g] + 64);
      const __m512i s2 = _mm512_loadu_si512(v[g] + 128);
      // Bytes j of sc_lo/mn_lo: scale and min of sub-block j; of sc_hi/mn_hi: of sub-block 4 + j.
      sc_lo[g] = _mm512_and_si512(s0, m6);
      mn_lo[g] = _mm512_and_si512(s1, m6);
      sc_hi[g] = _mm512_or_si512(_mm512_and_si512(s2, m4),
                                 _mm512_and_si512(_mm512_srli_epi32(s0, 2), m30));
      mn_hi[g] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(s2, 4), m4),
                                 _mm512_and_si512(_mm512_srli_epi32(s1, 2), m30));
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) isum[g][t] = _mm512_setzero_si512();
    }
#pragma GCC unroll 16
    for (int c = 0; c < 4; ++c) {
      __m512i dl[G][T], dh[G][T];
#pragma GCC unroll 16
      for (int g = 0; g < G; ++g)
#pragma GCC unroll 16
        for (int t = 0; t < T; ++t) dl[g][t] = dh[g][t] = _mm512_setzero_si512();
#pragma GCC unroll 16
      for (int m = 0; m < 8; ++m) {
        __m512i lo[G], hi[G];
#pragma GCC unroll 16
        for (int g = 0; g < G; ++g) {
          const uint8_t* qs = v[g] + 192 + c * 512 + 64 * m;
          _mm_prefetch(prefetch_at(qs, end[g], st.skip), _MM_HINT_T0);
          const __m512i q = _mm512_loadu_si512(qs);
          lo[g] = _mm512_and_si512(q, m4);
          hi[g] = _mm512_andnot_si512(m4, q);  // 16 * high nibble
        }
#pragma GCC unroll 16
        for (int t = 0; t < T; ++t) {
          const int8_t* a = static_cast<const BlockQ8_K*>(tok[t].q)[b].qs + 64 * c + 4 * m;
          const __m512i al = bcast4(a), ah = bcast4(a + 32);
#pragma GCC unroll 16
          for (int g = 0; g < G; ++g) {
            dl[g][t] = _mm512_dpbusd_epi32(dl[g][t], lo[g], al);
            dh[g][t] = _mm512_dpbusd_epi32(dh[g][t], hi[g], ah);
          }
        }
      }
#pragma GCC unroll 16
      for (int g = 0; g < G; ++g) {
        const __m512i sc_a = dword_byte(c < 2 ? sc_lo[g] : sc_hi[g], (2 * c) % 4);
        const __m512i sc_b = dword_byte(c < 2 ? sc_lo[g] : sc_hi[g], (2 * c + 1) % 4);
#pragma GCC unroll 16
        for (int t = 0; t < T; ++t) {
          const __m512i h = _mm512_srai_epi32(dh[g][t], 4);  // exact: a multiple of 16
          isum[g][t] = _mm512_add_epi32(
              isum[g][t],
              _mm512_add_epi32(_mm512_mullo_epi32(dl[g][t], sc_a), _mm512_mullo_epi32(h, sc_b)));
        }
      }
    }
#pragma GCC unroll 16
    for (int g = 0; g < G; ++g) {
      // Mins as int16 pairs (0,2) (1,3) (4,6) (5,7), as rows16_prepare pairs the sums.
      const __m512i mp[4] = {_mm512_and_si512(mn_lo[g], pairs),
                             _mm512_and_si512(_mm512_srli_epi32(mn_lo[g], 8), pairs),
                             _mm512_and_si512(mn_hi[g], pairs),
                             _mm512_and_si512(_mm512_srli_epi32(mn_hi[g], 8), pairs)};
      const auto* tails = group + g * st.stride + nb * kInter;
      const __m512i tail = _mm512_loadu_si512(tails + b * 64);
      const __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(tail));
      const __m512 dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(tail, 16)));
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) {
        const int32_t* corr = tok[t].corr + b * 4;
        __m512i msum = _mm512_setzero_si512();
#pragma GCC unroll 16
        for (int k = 0; k < 4; ++k)
          msum = _mm512_dpwssd_epi32(msum, mp[k], _mm512_set1_epi32(corr[k]));
        const __m512 vm = _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(msum));
        const __m512 vv = _mm512_fmsub_ps(d, _mm512_cvtepi32_ps(isum[g][t]), vm);
        acc[g][t] = _mm512_fmadd_ps(_mm512_set1_ps(tok[t].da[b]), vv, acc[g][t]);
      }
    }
  }
#pragma GCC unroll 16
  for (int g = 0; g < G; ++g)
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t)
      _mm512_storeu_ps(out + static_cast<size_t>(t) * out_stride + g * st.out_step, acc[g][t]);
}
template <int T>
void q4_k_group(const uint8_t* group, int64_t nb, const Rows16Token* tok, float* out,
                size_t out_stride) {
  const size_t group_bytes = static_cast<size_t>(nb) * kRows16 * sizeof(BlockQ4_K);
  q4_k_groups<T, 1>(group, group_bytes, group_bytes, nb, tok, out, out_stride);
}
void q4_k_pair(const uint8_t* group, size_t group_bytes, size_t stride, int64_t nb,
               const Rows16Token& tok, float* out) {
  q4_k_groups<1, kRows16PairGroups>(group, group_bytes, stride, nb, &tok, out, 0);
}

// T tokens times G adjacent groups (`group_bytes` apart; out + 16g for group g): each activation
// broadcast serves every group.
template <int T, int G = 1>
void q6_k_groups(const uint8_t* group, size_t group_bytes, size_t stride, int64_t nb,
                 const Rows16Token* tok, float* out, size_t out_stride) {
  const Streams st(G, group_bytes, stride);
  constexpr size_t kInter = 16 * 208;  // ql (32 vectors), qh (16), scales (4) per super-block
  const __m512i mfc = _mm512_set1_epi8(static_cast<char>(0xFC));
  __m512 acc[G][T];
#pragma GCC unroll 16
  for (int g = 0; g < G; ++g)
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) acc[g][t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* v[G];
    const uint8_t* end[G];
    __m512i isum[G][T];
#pragma GCC unroll 16
    for (int g = 0; g < G; ++g) {
      v[g] = group + g * st.stride + b * kInter;
      end[g] = group + g * st.stride + group_bytes;
      prefetch_tail(group + g * st.stride + nb * kInter, b + 1, nb, 32, st.next);
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) isum[g][t] = _mm512_setzero_si512();
    }
// Half h holds elements 128h..128h+127; within it, dword m (0..7) of ql/qh gives elements
// 4m.. (q1), 32+4m.. (q2), 64+4m.. (q3) and 96+4m.. (q4); sub-blocks of 16 take m in 0..3 or
// 4..7 (mq).
#pragma GCC unroll 16
    for (int h = 0; h < 2; ++h) {
#pragma GCC unroll 16
      for (int mq = 0; mq < 2; ++mq) {
        // Sub-block of q[i] below: 8h + 2i + mq; its sum starts at the token's correction (4x
        // for q[0..2], which are 4 x the quants).
        __m512i dot[G][T][4];
#pragma GCC unroll 16
        for (int g = 0; g < G; ++g)
#pragma GCC unroll 16
          for (int t = 0; t < T; ++t)
#pragma GCC unroll 16
            for (int i = 0; i < 4; ++i)
              dot[g][t][i] =
                  _mm512_set1_epi32(tok[t].corr[b * 16 + 8 * h + 2 * i + mq] * (i < 3 ? 4 : 1));
#pragma GCC unroll 16
        for (int m4i = 0; m4i < 4; ++m4i) {
          const int m = 4 * mq + m4i;
          __m512i q[G][4];
#pragma GCC unroll 16
          for (int g = 0; g < G; ++g) {
            const uint8_t* pa = v[g] + (16 * h + m) * 64;
            const uint8_t* pb = v[g] + (16 * h + 8 + m) * 64;
            const uint8_t* ph = v[g] + (32 + 8 * h + m) * 64;
            // The three lines this step reads, one super-block on: the reads jump between ql
            // and qh, so a fixed distance in address would miss the next qh lines.
            const size_t skip = st.skip;
            _mm_prefetch(next_at(pa, kInter, end[g], skip), _MM_HINT_T0);
            _mm_prefetch(next_at(pb, kInter, end[g], skip), _MM_HINT_T0);
            _mm_prefetch(next_at(ph, kInter, end[g], skip), _MM_HINT_T0);
            if (mq == 0 && m4i < 2) {
              const uint8_t* ps = v[g] + (48 + 2 * h + m4i) * 64;  // scales of half h
              _mm_prefetch(next_at(ps, kInter, end[g], skip), _MM_HINT_T0);
            }
            // Recoded bytes (q6_recode): 4 x u0..u2 are one mask each; u3 gathers bits 0-1 of
            // a, b and c.
            const __m512i qa = _mm512_loadu_si512(pa), qb = _mm512_loadu_si512(pb);
            const __m512i qc = _mm512_loadu_si512(ph);
            q[g][0] = _mm512_and_si512(qa, mfc);
            q[g][1] = _mm512_and_si512(qb, mfc);
            q[g][2] = _mm512_and_si512(qc, mfc);
            q[g][3] = q6_fourth(qa, qb, qc);
          }
#pragma GCC unroll 16
          for (int t = 0; t < T; ++t) {
            const int8_t* a = static_cast<const BlockQ8_K*>(tok[t].q)[b].qs + 128 * h + 4 * m;
#pragma GCC unroll 16
            for (int i = 0; i < 4; ++i) {
              const __m512i ai = bcast4(a + 32 * i);
#pragma GCC unroll 16
              for (int g = 0; g < G; ++g)
                dot[g][t][i] = _mm512_dpbusd_epi32(dot[g][t][i], q[g][i], ai);
            }
          }
        }
#pragma GCC unroll 16
        for (int i = 0; i < 4; ++i) {
          const int s = 8 * h + 2 * i + mq;
#pragma GCC unroll 16
          for (int g = 0; g < G; ++g) {
            const __m512i sv = _mm512_loadu_si512(v[g] + (48 + s / 4) * 64);
            // isum is kept at 4x: dot[..][0..2] already are, q[3]'s scale is taken 4x.
            __m512i sc = _mm512_srai_epi32(_mm512_slli_epi32(sv, 24 - 8 * (s % 4)), 24);
            if (i == 3) sc = _mm512_slli_epi32(sc, 2);
#pragma GCC unroll 16
            for (int t = 0; t < T; ++t)
              isum[g][t] = _mm512_add_epi32(isum[g][t], _mm512_mullo_epi32(dot[g][t][i], sc));
          }
        }
      }
    }
#pragma GCC unroll 16
    for (int g = 0; g < G; ++g) {
      const auto* tails = group + g * st.stride + nb * kInter;
      // d / 4 times 4 x isum: the same bits as d times isum (powers of two scale exactly; 4 x
      // isum stays below 2^31: |dot| < 2^17, |scale| <= 128, 16 sub-blocks).
      const __m512 d = _mm512_mul_ps(
          _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tails + b * 32))),
          _mm512_set1_ps(0.25f));
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) {
        const __m512 vd = _mm512_mul_ps(d, _mm512_cvtepi32_ps(isum[g][t]));
        acc[g][t] = _mm512_fmadd_ps(_mm512_set1_ps(tok[t].da[b]), vd, acc[g][t]);
      }
    }
  }
#pragma GCC unroll 16
  for (int g = 0; g < G; ++g)
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t)
      _mm512_storeu_ps(out + static_cast<size_t>(t) * out_stride + g * st.out_step, acc[g][t]);
}
template <int T>
void q6_k_group(const uint8_t* group, int64_t nb, const Rows16Token* tok, float* out,
                size_t out_stride) {
  const size_t group_bytes = static_cast<size_t>(nb) * kRows16 * sizeof(BlockQ6_K);
  q6_k_groups<T, 1>(group, group_bytes, group_bytes, nb, tok, out, out_stride);
}
void q6_k_pair(const uint8_t* group, size_t group_bytes, size_t stride, int64_t nb,
               const Rows16Token& tok, float* out) {
  q6_k_groups<1, kRows16PairGroups>(group, group_bytes, stride, nb, &tok, out, 0);
}

// Kernels by token count (the accumulators of every token stay in registers).
using GroupFn = void (*)(const uint8_t*, int64_t, const Rows16Token*, float*, size_t);
template <GroupFn K1, GroupFn K2, GroupFn K3, GroupFn K4>
void by_tokens(const uint8_t* group, int64_t nb, const Rows16Token* tok, int n_tok, float* out,
               size_t out_stride) {
  const GroupFn k = n_tok == 1 ? K1 : n_tok == 2 ? K2 : n_tok == 3 ? K3 : K4;
  k(group, nb, tok, out, out_stride);
}

}  // namespace

Rows16PairFn avx512_rows16_pair(DType weight_type) {
  switch (weight_type) {
    case DType::kQ4_0:
      return block32_pair<DType::kQ4_0, kRows16PairGroups>;
    case DType::kQ8_0:
      return block32_pair<DType::kQ8_0, kRows16PairGroups>;
    case DType::kQ4_K:
      return q4_k_pair;
    case DType::kQ6_K:
      return q6_k_pair;
    default:
      return nullptr;
  }
}

Rows16Fn avx512_rows16(DType weight_type) {
  switch (weight_type) {
    case DType::kQ4_0:
      return by_tokens<block32_group<DType::kQ4_0, 1>, block32_group<DType::kQ4_0, 2>,
                       block32_group<DType::kQ4_0, 3>, block32_group<DType::kQ4_0, 4>>;
    case DType::kQ8_0:
      return by_tokens<block32_group<DType::kQ8_0, 1>, block32_group<DType::kQ8_0, 2>,
                       block32_group<DType::kQ8_0, 3>, block32_group<DType::kQ8_0, 4>>;
    case DType::kQ4_K:
      return by_tokens<q4_k_group<1>, q4_k_group<2>, q4_k_group<3>, q4_k_group<4>>;
    case DType::kQ6_K:
      return by_tokens<q6_k_group<1>, q6_k_group<2>, q6_k_group<3>, q6_k_group<4>>;
    default:
      return nullptr;
  }
}

}  // namespace enclave::kernels::detail
