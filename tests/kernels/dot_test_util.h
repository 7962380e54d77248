// Test helpers for the dot/matmul tests: random weight and activation rows built directly from
// random bytes (sane f16 scales), and an independent dequantizer written from the reference doc.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/fp16.h"
#include "kernels/matmul.h"
#include "kernels/quant_blocks.h"
#include "kernels/repack.h"

namespace enclave::kernels::testing {

using Bytes = std::vector<uint8_t>;

inline void put_f16(uint8_t* p, float v) {
  const uint16_t h = f32_to_fp16(v);
  std::memcpy(p, &h, 2);
}
inline float get_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_f32(h);
}

// Byte offsets of the f16 scale fields inside one block.
inline std::vector<size_t> f16_fields(DType t) {
  switch (t) {
    case DType::kQ4_0:
    case DType::kQ5_0:
    case DType::kQ8_0:
      return {0};
    case DType::kQ4_1:
    case DType::kQ5_1:
    case DType::kQ4_K:
    case DType::kQ5_K:
      return {0, 2};
    case DType::kQ2_K:
      return {80, 82};
    case DType::kQ3_K:
      return {108};
    case DType::kQ6_K:
      return {208};
    default:
      return {};
  }
}

// `exact`: every scale/min is 1.0 so dot products are exact integers.
inline Bytes random_weight_row(DType t, int64_t n, std::mt19937& rng, bool exact) {
  const DTypeTraits& tr = dtype_traits(t);
  Bytes row(dtype_row_bytes(t, static_cast<uint64_t>(n)));
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(0.002f, 0.05f);
  std::uniform_real_distribution<float> real(-1.0f, 1.0f);
  if (!tr.quantized) {
    for (int64_t i = 0; i < n; ++i) {
      const float v = real(rng);
      if (t == DType::kF32) std::memcpy(row.data() + 4 * i, &v, 4);
      if (t == DType::kF16) put_f16(row.data() + 2 * i, v);
      if (t == DType::kBF16) {
        const uint16_t b = f32_to_bf16(v);
        std::memcpy(row.data() + 2 * i, &b, 2);
      }
    }
    return row;
  }
  for (auto& b : row) b = static_cast<uint8_t>(byte(rng));
  const int64_t nb = n / tr.block_elems;
  for (int64_t i = 0; i < nb; ++i) {
    uint8_t* blk = row.data() + i * tr.block_bytes;
    for (size_t off : f16_fields(t)) put_f16(blk + off, exact ? 1.0f : scale(rng));
    if (t == DType::kQ6_K && exact) {
      // Keep exact-mode sums far from 2^24.
      for (int s = 0; s < 16; ++s)
        blk[192 + s] = static_cast<uint8_t>(static_cast<int8_t>(byte(rng) % 17 - 8));
    }
  }
  return row;
}

// Activation row of `t` (Q8_0, Q8_1, Q8_K, F32, F16, BF16) with quants in [-lim, lim].
inline Bytes random_act_row(DType t, int64_t n, std::mt19937& rng, bool exact) {
  const int lim = exact ? 4 : 127;
  std::uniform_int_distribution<int> q(-lim, lim);
  std::uniform_real_distribution<float> scale(0.002f, 0.05f);
  Bytes row(dtype_row_bytes(t, static_cast<uint64_t>(n)));
  if (t == DType::kQ8_0) {
    auto* b = reinterpret_cast<BlockQ8_0*>(row.data());
    for (int64_t i = 0; i < n / 32; ++i) {
      b[i].d = f32_to_fp16(exact ? 1.0f : scale(rng));
      for (auto& v : b[i].qs) v = static_cast<int8_t>(q(rng));
    }
  } else if (t == DType::kQ8_1) {
    auto* b = reinterpret_cast<BlockQ8_1*>(row.data());
    for (int64_t i = 0; i < n / 32; ++i) {
      const float d = exact ? 1.0f : scale(rng);
      int sum = 0;
      for (auto& v : b[i].qs) {
        v = static_cast<int8_t>(q(rng));
        sum += v;
      }
      b[i].d = f32_to_fp16(d);
      b[i].s = f32_to_fp16(d * static_cast<float>(sum));
    }
  } else if (t == DType::kQ8_K) {
    auto* b = reinterpret_cast<BlockQ8_K*>(row.data());
    for (int64_t i = 0; i < n / 256; ++i) {
      b[i].d = exact ? 1.0f : scale(rng);
      for (auto& v : b[i].qs) v = static_cast<int8_t>(q(rng));
      for (int k = 0; k < 16; ++k) {
        int s = 0;
        for (int j = 0; j < 16; ++j) s += b[i].qs[16 * k + j];
        b[i].bsums[k] = static_cast<int16_t>(s);
      }
    }
  } else {
    return random_weight_row(t, n, rng, false);
  }
  return row;
}

// Independent dequantization (reference doc section 2.3), including activation types.
inline std::vector<double> dequant(DType t, const uint8_t* p, int64_t n) {
  std::vector<double> y(static_cast<size_t>(n));
  auto f32 = [](const uint8_t* q) {
    float v;
    std::memcpy(&v, q, 4);
    return v;
  };
  if (t == DType::kF32) {
    for (int64_t i = 0; i < n; ++i) y[i] = f32(p + 4 * i);
    return y;
  }
  if (t == DType::kF16 || t == DType::kBF16) {
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      y[i] = t == DType::kF16 ? fp16_to_f32(h) : bf16_to_f32(h);
    }
    return y;
  }
  const DTypeTraits& tr = dtype_traits(t);
  for (int64_t bi = 0; bi < n / tr.block_elems; ++bi) {
    const uint8_t* b = p + bi * tr.block_bytes;
    double* o = y.data() + bi * tr.block_elems;
    switch (t) {
      case DType::kQ4_0:
      case DType::kQ4_1: {
        const bool one = t == DType::kQ4_1;
        const double d = get_f16(b), m = one ? get_f16(b + 2) : 0.0;
        const uint8_t* qs = b + (one ? 4 : 2);
        for (int j = 0; j < 16; ++j) {
          o[j] = one ? (qs[j] & 15) * d + m : ((qs[j] & 15) - 8) * d;
          o[j + 16] = one ? (qs[j] >> 4) * d + m : ((qs[j] >> 4) - 8) * d;
        }
        break;
      }
      case DType::kQ5_0:
      case DType::kQ5_1: {
        const bool one = t == DType::kQ5_1;
        const double d = get_f16(b), m = one ? get_f16(b + 2) : 0.0;
        uint32_t qh;
        std::memcpy(&qh, b + (one ? 4 : 2), 4);
        const uint8_t* qs = b + (one ? 8 : 6);
        for (int j = 0; j < 16; ++j) {
          const int x0 = (qs[j] & 15) | (((qh >> j) << 4) & 0x10);
          const int x1 = (qs[j] >> 4) | ((qh >> (j + 12)) & 0x10);
          o[j] = one ? x0 * d + m : (x0 - 16) * d;
          o[j + 16] = one ? x1 * d + m : (x1 - 16) * d;
        }
        break;
      }
      case DType::kQ8_0:
      case DType::kQ8_1: {
        const double d = get_f16(b);
        const auto* qs = reinterpret_cast<const int8_t*>(b + (t == DType::kQ8_1 ? 4 : 2));
        for (int j = 0; j < 32; ++j) o[j] = qs[j] * d;
        break;
      }
      case DType::kQ8_K: {
        const double d = f32(b);
        for (int j = 0; j < 256; ++j) o[j] = static_cast<int8_t>(b[4 + j]) * d;
        break;
      }
      case DType::kQ2_K: {
        const uint8_t* sc = b;
        const uint8_t* q = b + 16;
        const double d = get_f16(b + 80), dmin = get_f16(b + 82);
        int is = 0;
        for (int n128 = 0; n128 < 2; ++n128, q += 32) {
          for (int shift = 0; shift < 8; shift += 2) {
            for (int part = 0; part < 2; ++part) {
              const int s = sc[is++];
              for (int l = 0; l < 16; ++l)
                *o++ = d * (s & 15) * ((q[l + 16 * part] >> shift) & 3) - dmin * (s >> 4);
            }
          }
        }
        break;
      }
      case DType::kQ3_K: {
        const uint8_t* hm = b;
        const uint8_t* q = b + 32;
        const uint8_t* s12 = b + 96;
        const double d = get_f16(b + 108);
        uint32_t a[3];
        std::memcpy(a, s12, 12);
        const uint32_t tt = a[2];
        uint32_t s4[4] = {(a[0] & 0x0F0F0F0F) | (((tt >> 0) & 0x03030303) << 4),
                          (a[1] & 0x0F0F0F0F) | (((tt >> 2) & 0x03030303) << 4),
                          ((a[0] >> 4) & 0x0F0F0F0F) | (((tt >> 4) & 0x03030303) << 4),
                          ((a[1] >> 4) & 0x0F0F0F0F) | (((tt >> 6) & 0x03030303) << 4)};
        int8_t sc[16];
        std::memcpy(sc, s4, 16);
        int is = 0;
        uint8_t m = 1;
        for (int n128 = 0; n128 < 2; ++n128, q += 32) {
          for (int shift = 0; shift < 8; shift += 2, m <<= 1) {
            for (int part = 0; part < 2; ++part) {
              const double dl = d * (sc[is++] - 32);
              for (int l = 0; l < 16; ++l) {
                const int lo = (q[l + 16 * part] >> shift) & 3;
                *o++ = dl * (lo - ((hm[l + 16 * part] & m) ? 0 : 4));
              }
            }
          }
        }
        break;
      }
      case DType::kQ4_K:
      case DType::kQ5_K: {
        const bool five = t == DType::kQ5_K;
        const double d = get_f16(b), dmin = get_f16(b + 2);
        const uint8_t* s = b + 4;
        const uint8_t* qh = b + 16;
        const uint8_t* qs = b + (five ? 48 : 16);
        auto sm = [&](int j, int* sc, int* mn) {
          if (j < 4) {
            *sc = s[j] & 63, *mn = s[j + 4] & 63;
          } else {
            *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
            *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
          }
        };
        for (int c = 0; c < 4; ++c) {
          int sc0, m0, sc1, m1;
          sm(2 * c, &sc0, &m0);
          sm(2 * c + 1, &sc1, &m1);
          for (int l = 0; l < 32; ++l) {
            const int lo = (qs[32 * c + l] & 15) + (five && (qh[l] & (1 << (2 * c))) ? 16 : 0);
            const int hi = (qs[32 * c + l] >> 4) + (five && (qh[l] & (1 << (2 * c + 1))) ? 16 : 0);
            o[64 * c + l] = d * sc0 * lo - dmin * m0;
            o[64 * c + 32 + l] = d * sc1 * hi - dmin * m1;
          }
        }
        break;
      }
      case DType::kQ6_K: {
        const double d = get_f16(b + 208);
        for (int h = 0; h < 2; ++h) {
          const uint8_t* ql = b + 64 * h;
          const uint8_t* qh = b + 128 + 32 * h;
          const auto* sc = reinterpret_cast<const int8_t*>(b + 192 + 8 * h);
          double* oo = o + 128 * h;
          for (int l = 0; l < 32; ++l) {
            const int is = l / 16;
            oo[l] = d * sc[is] * (((ql[l] & 15) | ((qh[l] & 3) << 4)) - 32);
            oo[l + 32] = d * sc[is + 2] * (((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32);
            oo[l + 64] = d * sc[is + 4] * (((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            oo[l + 96] = d * sc[is + 6] * (((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
          }
        }
        break;
      }
      default:
        break;
    }
  }
  return y;
}

inline const std::vector<DType>& weight_types() {
  static const std::vector<DType> kTypes = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ4_0,
                                            DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ8_0,
                                            DType::kQ2_K, DType::kQ3_K, DType::kQ4_K, DType::kQ5_K,
                                            DType::kQ6_K};
  return kTypes;
}

// A weight matrix of random rows (random_weight_row) and the WeightMatrix view of it.
struct Matrix {
  Bytes data;
  WeightMatrix w;
};

inline Matrix random_matrix(DType t, int64_t rows, int64_t cols, std::mt19937& rng,
                            bool exact = false) {
  Matrix m;
  const size_t rb = dtype_row_bytes(t, static_cast<uint64_t>(cols));
  m.data.resize(rb * static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const auto row = random_weight_row(t, cols, rng, exact);
    std::copy(row.begin(), row.end(), m.data.begin() + r * rb);
  }
  m.w = WeightMatrix{t, m.data.data(), cols, rows, rb};
  return m;
}

// Uniform activations: per-block absmax 8-bit quantization then costs ~0.4% RMS
// (step/sqrt(12) against a uniform's sd), well inside the matmul tests' 1% bound.
// A rows16 copy (kernels/repack.h) of m.
struct Rows16Copy {
  std::vector<uint8_t> data;
  WeightMatrix w;
};
inline Rows16Copy rows16_copy(const Matrix& m) {
  Rows16Copy p;
  p.data.resize(m.data.size());
  repack_rows16(m.w.type, m.data.data(), p.data.data(), m.w.rows, m.w.cols);
  p.w = m.w;
  p.w.data = p.data.data();
  p.w.layout = WeightLayout::kRows16;
  return p;
}

inline std::vector<float> random_x(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = d(rng);
  return x;
}

// ||y - ref|| / ||ref||.
inline double rel_err(const std::vector<float>& y, const std::vector<float>& ref) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < y.size(); ++i) {
    num += (static_cast<double>(y[i]) - ref[i]) * (static_cast<double>(y[i]) - ref[i]);
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return std::sqrt(num / den);
}

}  // namespace enclave::kernels::testing
