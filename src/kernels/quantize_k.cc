// Super-block (256-element) types: Q2_K..Q6_K and Q8_K. Quantization follows ggml's reference
// encoders without importance matrix: per sub-block a float32 scale (and min) search, then the
// sub-block scales are themselves quantized to 4/6/8 bits against one f16 super-block scale, and
// the values are re-quantized against the scales actually stored. Operand order matters for
// bit-exactness; this file is compiled without FMA contraction.
#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "kernels/quant_blocks.h"
#include "kernels/quantize_internal.h"

namespace enclave::kernels::quant_detail {
namespace {

// Q4_K/Q5_K scale and min j (0..7) from the 12 packed bytes.
inline void unpack_k4_scale_min(const uint8_t* s, int j, int* sc, int* mn) {
  if (j < 4) {
    *sc = s[j] & 63;
    *mn = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
    *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Packs 8 six-bit scales and mins (see unpack_k4_scale_min).
inline void pack_k4_scales(const uint8_t* ls, const uint8_t* lm, uint8_t* s) {
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      s[j] = ls[j];
      s[j + 4] = lm[j];
    } else {
      s[j + 4] = static_cast<uint8_t>((ls[j] & 0x0F) | ((lm[j] & 0x0F) << 4));
      s[j - 4] = static_cast<uint8_t>(s[j - 4] | ((ls[j] >> 4) << 6));
      s[j] = static_cast<uint8_t>(s[j] | ((lm[j] >> 4) << 6));
    }
  }
}

// Q3_K's 16 six-bit scales (stored +32) from the 12 packed bytes.
inline void unpack_q3_scales(const uint8_t* s, int8_t* out) {
  uint32_t a[3];
  std::memcpy(a, s, 12);
  const uint32_t lo4 = 0x0F0F0F0Fu;
  const uint32_t lo2 = 0x03030303u;
  const uint32_t w[4] = {
      (a[0] & lo4) | (((a[2] >> 0) & lo2) << 4),
      (a[1] & lo4) | (((a[2] >> 2) & lo2) << 4),
      ((a[0] >> 4) & lo4) | (((a[2] >> 4) & lo2) << 4),
      ((a[1] >> 4) & lo4) | (((a[2] >> 6) & lo2) << 4),
  };
  std::memcpy(out, w, 16);
}

// Shared tail of Q4_K/Q5_K: store 6-bit scales/mins against f16 super-scales, then re-quantize
// every sub-block against the stored values. L gets levels in [0, nmax].
void k4_finish_block(const float* x, const float* scales, const float* mins, int nmax,
                     uint16_t* d_out, uint16_t* dmin_out, uint8_t* packed, uint8_t* L) {
  float max_scale = 0;
  float max_min = 0;
  for (int j = 0; j < 8; ++j) {
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    // ggml stores the rounded value in a uint8_t before clamping to 63.
    const uint8_t s = static_cast<uint8_t>(nearest_int(inv_scale * scales[j]));
    const uint8_t m = static_cast<uint8_t>(nearest_int(inv_min * mins[j]));
    ls[j] = s > 63 ? 63 : s;
    lm[j] = m > 63 ? 63 : m;
  }
  std::memset(packed, 0, kKScaleBytes);
  pack_k4_scales(ls, lm, packed);
  *d_out = f32_to_fp16(max_scale / 63.f);
  *dmin_out = f32_to_fp16(max_min / 63.f);
  const float d_all = fp16_to_f32(*d_out);
  const float dmin_all = fp16_to_f32(*dmin_out);
  for (int j = 0; j < 8; ++j) {
    int sc, mn;
    unpack_k4_scale_min(packed, j, &sc, &mn);
    const float d = d_all * static_cast<float>(sc);
    if (d == 0.0f) continue;
    const float dm = dmin_all * static_cast<float>(mn);
    for (int i = 0; i < 32; ++i) {
      L[32 * j + i] =
          static_cast<uint8_t>(clamp_int(nearest_int((x[32 * j + i] + dm) / d), 0, nmax));
    }
  }
}

// Per-sub-block fits of Q4_K/Q5_K: weights are rms(sub-block) + |x|; the 8 sub-blocks are fitted
// together, one per lane.
void k4_fit_sub_blocks(const float* x, int nmax, float rmin, float rdelta, int nstep, float* scales,
                       float* mins, uint8_t* L) {
  float w[kQK_K];
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + 32 * j;
    float sum_x2 = 0;
    for (int i = 0; i < 32; ++i) sum_x2 += xs[i] * xs[i];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int i = 0; i < 32; ++i) w[32 * j + i] = av_x + std::fabs(xs[i]);
  }
  fit_scale_min_x8(32, nmax, x, w, L, scales, mins, rmin, rdelta, nstep, false);
}

}  // namespace

// ---- quantization ----

void quantize_q2_k(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ2_K*>(dst);
  uint8_t L[kQK_K];
  float w[kQK_K];
  float scales[16], mins[16];
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    float max_scale = 0;
    float max_min = 0;
    for (int i = 0; i < kQK_K; ++i) w[i] = std::fabs(x[i]);
    // Sub-blocks 0-7 and 8-15, one per lane.
    fit_scale_min_x8(16, 3, x, w, L, scales, mins, -0.5f, 0.1f, 15, true);
    fit_scale_min_x8(16, 3, x + 128, w + 128, L + 128, scales + 8, mins + 8, -0.5f, 0.1f, 15, true);
    for (int j = 0; j < 16; ++j) {
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    if (max_scale > 0) {
      const float iscale = 15.f / max_scale;
      for (int j = 0; j < 16; ++j)
        y[b].scales[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
      y[b].d = f32_to_fp16(max_scale / 15.f);
    } else {
      std::memset(y[b].scales, 0, sizeof(y[b].scales));
      y[b].d = f32_to_fp16(0.f);
    }
    if (max_min > 0) {
      const float iscale = 15.f / max_min;
      for (int j = 0; j < 16; ++j) {
        y[b].scales[j] =
            static_cast<uint8_t>(y[b].scales[j] | (nearest_int(iscale * mins[j]) << 4));
      }
      y[b].dmin = f32_to_fp16(max_min / 15.f);
    } else {
      y[b].dmin = f32_to_fp16(0.f);
    }
    const float d_all = fp16_to_f32(y[b].d);
    const float dmin_all = fp16_to_f32(y[b].dmin);
    for (int j = 0; j < 16; ++j) {
      const float d = d_all * static_cast<float>(y[b].scales[j] & 0xF);
      if (d == 0.0f) continue;
      const float dm = dmin_all * static_cast<float>(y[b].scales[j] >> 4);
      for (int i = 0; i < 16; ++i) {
        L[16 * j + i] =
            static_cast<uint8_t>(clamp_int(nearest_int((x[16 * j + i] + dm) / d), 0, 3));
      }
    }
    // Byte l of each 32-byte half holds elements l, l+32, l+64, l+96 of that half (2 bits each).
    for (int h = 0; h < 2; ++h) {
      const uint8_t* Lh = L + 128 * h;
      for (int l = 0; l < 32; ++l) {
        y[b].qs[32 * h + l] =
            static_cast<uint8_t>(Lh[l] | (Lh[l + 32] << 2) | (Lh[l + 64] << 4) | (Lh[l + 96] << 6));
      }
    }
  }
}

void quantize_q3_k(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ3_K*>(dst);
  int8_t L[kQK_K];
  float scales[16];
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    float max_scale = 0;
    float amax = 0;
    for (int j = 0; j < 16; ++j) {
      scales[j] = fit_q3(16, 4, x + 16 * j, L + 16 * j);
      const float a = std::fabs(scales[j]);
      if (a > amax) {
        amax = a;
        max_scale = scales[j];
      }
    }
    std::memset(y[b].scales, 0, sizeof(y[b].scales));
    if (max_scale != 0.0f) {
      const float iscale = -32.f / max_scale;
      for (int j = 0; j < 16; ++j) {
        // ggml narrows to int8 before clamping; the value is within [-33, 33] here.
        const int8_t r = static_cast<int8_t>(nearest_int(iscale * scales[j]));
        const int l = clamp_int(r, -32, 31) + 32;
        if (j < 8) {
          y[b].scales[j] = static_cast<uint8_t>(l & 0xF);
        } else {
          y[b].scales[j - 8] = static_cast<uint8_t>(y[b].scales[j - 8] | ((l & 0xF) << 4));
        }
        y[b].scales[8 + j % 4] =
            static_cast<uint8_t>(y[b].scales[8 + j % 4] | ((l >> 4) << (2 * (j / 4))));
      }
      y[b].d = f32_to_fp16(1 / iscale);
    } else {
      y[b].d = f32_to_fp16(0.f);
    }
    int8_t sc[16];
    unpack_q3_scales(y[b].scales, sc);
    const float d_all = fp16_to_f32(y[b].d);
    for (int j = 0; j < 16; ++j) {
      const float d = d_all * static_cast<float>(sc[j] - 32);
      if (d == 0.0f) continue;
      for (int i = 0; i < 16; ++i) {
        L[16 * j + i] = static_cast<int8_t>(clamp_int(nearest_int(x[16 * j + i] / d), -4, 3) + 4);
      }
    }
    // High bit of element j goes to bit j/32 of hmask[j%32]; the low 2 bits pack as in Q2_K.
    std::memset(y[b].hmask, 0, sizeof(y[b].hmask));
    uint8_t low[kQK_K];
    for (int j = 0; j < kQK_K; ++j) {
      int l = L[j];
      if (l > 3) {
        y[b].hmask[j % 32] = static_cast<uint8_t>(y[b].hmask[j % 32] | (1u << (j / 32)));
        l -= 4;
      }
      low[j] = static_cast<uint8_t>(l);
    }
    for (int h = 0; h < 2; ++h) {
      const uint8_t* Lh = low + 128 * h;
      for (int l = 0; l < 32; ++l) {
        y[b].qs[32 * h + l] =
            static_cast<uint8_t>(Lh[l] | (Lh[l + 32] << 2) | (Lh[l + 64] << 4) | (Lh[l + 96] << 6));
      }
    }
  }
}

void quantize_q4_k(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ4_K*>(dst);
  uint8_t L[kQK_K];
  float scales[8], mins[8];
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    k4_fit_sub_blocks(x, 15, -1.f, 0.1f, 20, scales, mins, L);
    k4_finish_block(x, scales, mins, 15, &y[b].d, &y[b].dmin, y[b].scales, L);
    // Byte l of chunk c: element 64c + l (low nibble) and 64c + 32 + l (high nibble).
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        y[b].qs[32 * c + l] = static_cast<uint8_t>(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
      }
    }
  }
}

void quantize_q5_k(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ5_K*>(dst);
  uint8_t L[kQK_K];
  float scales[8], mins[8];
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    k4_fit_sub_blocks(x, 31, -0.5f, 0.1f, 15, scales, mins, L);
    k4_finish_block(x, scales, mins, 31, &y[b].d, &y[b].dmin, y[b].scales, L);
    std::memset(y[b].qh, 0, sizeof(y[b].qh));
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        int lo = L[64 * c + l];
        int hi = L[64 * c + 32 + l];
        if (lo > 15) {
          lo -= 16;
          y[b].qh[l] = static_cast<uint8_t>(y[b].qh[l] | (1u << (2 * c)));
        }
        if (hi > 15) {
          hi -= 16;
          y[b].qh[l] = static_cast<uint8_t>(y[b].qh[l] | (1u << (2 * c + 1)));
        }
        y[b].qs[32 * c + l] = static_cast<uint8_t>(lo | (hi << 4));
      }
    }
  }
}

void quantize_q6_k(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ6_K*>(dst);
  int8_t L[kQK_K];
  float scales[16];
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    float max_scale = 0;
    float max_abs_scale = 0;
    fit_symmetric_x8(16, 32, x, L, scales);
    fit_symmetric_x8(16, 32, x + 128, L + 128, scales + 8);
    for (int j = 0; j < 16; ++j) {
      const float a = std::fabs(scales[j]);
      if (a > max_abs_scale) {
        max_abs_scale = a;
        max_scale = scales[j];
      }
    }
    if (max_abs_scale < kGroupMaxEps) {
      std::memset(&y[b], 0, sizeof(BlockQ6_K));
      continue;
    }
    const float iscale = -128.f / max_scale;
    y[b].d = f32_to_fp16(1 / iscale);
    for (int j = 0; j < 16; ++j) {
      const int s = nearest_int(iscale * scales[j]);
      y[b].scales[j] = static_cast<int8_t>(s > 127 ? 127 : s);
    }
    const float d_all = fp16_to_f32(y[b].d);
    for (int j = 0; j < 16; ++j) {
      const float d = d_all * static_cast<float>(y[b].scales[j]);
      if (d == 0.0f) continue;
      for (int i = 0; i < 16; ++i) {
        L[16 * j + i] =
            static_cast<int8_t>(clamp_int(nearest_int(x[16 * j + i] / d), -32, 31) + 32);
      }
    }
    // Per half of 128: ql[l] = lo4(e[l]) | lo4(e[l+64]) << 4, ql[l+32] = lo4(e[l+32]) |
    // lo4(e[l+96]) << 4, qh[l] = the four high 2-bit pairs of e[l], e[l+32], e[l+64], e[l+96].
    for (int h = 0; h < 2; ++h) {
      const auto* Lh = reinterpret_cast<const uint8_t*>(L) + 128 * h;
      uint8_t* ql = y[b].ql + 64 * h;
      uint8_t* qh = y[b].qh + 32 * h;
      for (int l = 0; l < 32; ++l) {
        ql[l] = static_cast<uint8_t>((Lh[l] & 0xF) | ((Lh[l + 64] & 0xF) << 4));
        ql[l + 32] = static_cast<uint8_t>((Lh[l + 32] & 0xF) | ((Lh[l + 96] & 0xF) << 4));
        qh[l] = static_cast<uint8_t>((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) |
                                     ((Lh[l + 64] >> 4) << 4) | ((Lh[l + 96] >> 4) << 6));
      }
    }
  }
}

void quantize_q8_k(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_K*>(dst);
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    float amax;
    const float max = signed_absmax(x, kQK_K, &amax);
    if (amax == 0.0f) {
      std::memset(&y[b], 0, sizeof(BlockQ8_K));  // ggml leaves bsums unset; zero is their value
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < kQK_K; ++j) {
      const int v = nearest_int(iscale * x[j]);
      y[b].qs[j] = static_cast<int8_t>(v > 127 ? 127 : v);
    }
    for (int g = 0; g < kQK_K / 16; ++g) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += y[b].qs[16 * g + i];
      y[b].bsums[g] = static_cast<int16_t>(sum);
    }
    y[b].d = 1 / iscale;
  }
}

// ---- dequantization (operation order of ggml's dequantize_row_*) ----

void dequantize_q2_k(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ2_K*>(src);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = fp16_to_f32(x[b].d);
    const float dmin = fp16_to_f32(x[b].dmin);
    int is = 0;
    for (int h = 0; h < 2; ++h) {
      const uint8_t* q = x[b].qs + 32 * h;
      for (int shift = 0; shift < 8; shift += 2) {
        for (int part = 0; part < 2; ++part) {
          const uint8_t sc = x[b].scales[is++];
          const float dl = d * static_cast<float>(sc & 0xF);
          const float ml = dmin * static_cast<float>(sc >> 4);
          const uint8_t* qp = q + 16 * part;
          for (int l = 0; l < 16; ++l) *y++ = dl * static_cast<float>((qp[l] >> shift) & 3) - ml;
        }
      }
    }
  }
}

void dequantize_q3_k(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ3_K*>(src);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = fp16_to_f32(x[b].d);
    int8_t sc[16];
    unpack_q3_scales(x[b].scales, sc);
    int is = 0;
    unsigned mbit = 1;
    for (int h = 0; h < 2; ++h) {
      const uint8_t* q = x[b].qs + 32 * h;
      for (int shift = 0; shift < 8; shift += 2, mbit <<= 1) {
        for (int part = 0; part < 2; ++part) {
          const float dl = d * static_cast<float>(sc[is++] - 32);
          const uint8_t* qp = q + 16 * part;
          const uint8_t* hm = x[b].hmask + 16 * part;
          for (int l = 0; l < 16; ++l) {
            const int v = ((qp[l] >> shift) & 3) - ((hm[l] & mbit) ? 0 : 4);
            *y++ = dl * static_cast<float>(v);
          }
        }
      }
    }
  }
}

void dequantize_q4_k(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ4_K*>(src);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = fp16_to_f32(x[b].d);
    const float dmin = fp16_to_f32(x[b].dmin);
    for (int c = 0; c < 4; ++c) {
      const uint8_t* q = x[b].qs + 32 * c;
      int sc, mn;
      unpack_k4_scale_min(x[b].scales, 2 * c, &sc, &mn);
      const float d1 = d * static_cast<float>(sc);
      const float m1 = dmin * static_cast<float>(mn);
      unpack_k4_scale_min(x[b].scales, 2 * c + 1, &sc, &mn);
      const float d2 = d * static_cast<float>(sc);
      const float m2 = dmin * static_cast<float>(mn);
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    }
  }
}

void dequantize_q5_k(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ5_K*>(src);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = fp16_to_f32(x[b].d);
    const float dmin = fp16_to_f32(x[b].dmin);
    const uint8_t* qh = x[b].qh;
    for (int c = 0; c < 4; ++c) {
      const uint8_t* q = x[b].qs + 32 * c;
      const unsigned u1 = 1u << (2 * c);
      const unsigned u2 = 2u << (2 * c);
      int sc, mn;
      unpack_k4_scale_min(x[b].scales, 2 * c, &sc, &mn);
      const float d1 = d * static_cast<float>(sc);
      const float m1 = dmin * static_cast<float>(mn);
      unpack_k4_scale_min(x[b].scales, 2 * c + 1, &sc, &mn);
      const float d2 = d * static_cast<float>(sc);
      const float m2 = dmin * static_cast<float>(mn);
      for (int l = 0; l < 32; ++l) {
        *y++ = d1 * static_cast<float>((q[l] & 0xF) + ((qh[l] & u1) ? 16 : 0)) - m1;
      }
      for (int l = 0; l < 32; ++l) {
        *y++ = d2 * static_cast<float>((q[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
      }
    }
  }
}

void dequantize_q6_k(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ6_K*>(src);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = fp16_to_f32(x[b].d);
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = x[b].ql + 64 * h;
      const uint8_t* qh = x[b].qh + 32 * h;
      const int8_t* sc = x[b].scales + 8 * h;
      float* yh = y + 128 * h;
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        yh[l] = d * static_cast<float>(sc[is + 0]) * static_cast<float>(q1);
        yh[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
        yh[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
        yh[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
      }
    }
    y += kQK_K;
  }
}

void dequantize_q8_k(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ8_K*>(src);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = x[b].d;
    for (int j = 0; j < kQK_K; ++j) *y++ = d * static_cast<float>(x[b].qs[j]);
  }
}

}  // namespace enclave::kernels::quant_detail
