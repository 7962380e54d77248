#include "kernels/repack.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "core/cpu_features.h"
#include "core/fp16.h"
#include "kernels/quant_blocks.h"
#include "kernels/vec_dot_impl.h"

namespace enclave::kernels {
namespace {

using Format = detail::Rows16Format;

// Q8_0's flip turns its int8 quants into excess-128 bytes, the unsigned operand vpdpbusd needs
// (the activation sum times -128 corrects it).
const Format* format_of(DType type) {
  static constexpr Format kQ4_0{32, 18, 0, 2, 0, false};
  static constexpr Format kQ8_0{32, 34, 0, 2, 0x80, false};
  static constexpr Format kQ4_K{256, 144, 0, 4, 0, false};  // tail: d and dmin
  static constexpr Format kQ6_K{256, 210, 208, 2, 0, true};
  switch (type) {
    case DType::kQ4_0:
      return &kQ4_0;
    case DType::kQ8_0:
      return &kQ8_0;
    case DType::kQ4_K:
      return &kQ4_K;
    case DType::kQ6_K:
      return &kQ6_K;
    default:
      return nullptr;
  }
}

// Byte offsets, inside a group of nb blocks, of interleaved byte i of row r in block b and of that
// row's tail.
size_t inter_offset(const Format& f, int64_t b, int r, int i) {
  return static_cast<size_t>(b) * kRows16 * static_cast<size_t>(f.inter_bytes()) +
         static_cast<size_t>(i / 4) * 64 + static_cast<size_t>(r) * 4 + static_cast<size_t>(i % 4);
}
size_t tail_offset(const Format& f, int64_t nb, int64_t b, int r) {
  return static_cast<size_t>(nb) * kRows16 * static_cast<size_t>(f.inter_bytes()) +
         (static_cast<size_t>(b) * kRows16 + static_cast<size_t>(r)) *
             static_cast<size_t>(f.tail_bytes);
}

// One row of a group: GGUF blocks -> rows16 (pack) or back, 4 interleaved bytes at a time (the
// interleaved part is a whole number of dwords and never straddles the tail).
void pack_row(const Format& f, const uint8_t* row, int64_t nb, int r, uint8_t* group) {
  const uint32_t flip = 0x01010101u * f.flip;
  uint8_t recoded[sizeof(BlockQ6_K)];
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = row + b * f.block_bytes;
    if (f.q6_recode) {
      std::memcpy(recoded, blk, sizeof recoded);
      detail::q6_recode_block<false>(recoded);
      blk = recoded;
    }
    for (int i = 0; i < f.inter_bytes(); i += 4) {
      uint32_t d;
      std::memcpy(&d, blk + f.block_byte(i), 4);
      d ^= flip;
      std::memcpy(group + inter_offset(f, b, r, i), &d, 4);
    }
    std::memcpy(group + tail_offset(f, nb, b, r), blk + f.tail_offset,
                static_cast<size_t>(f.tail_bytes));
  }
}
void unpack_row(const Format& f, const uint8_t* group, int64_t nb, int r, uint8_t* row) {
  const uint32_t flip = 0x01010101u * f.flip;
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* blk = row + b * f.block_bytes;
    for (int i = 0; i < f.inter_bytes(); i += 4) {
      uint32_t d;
      std::memcpy(&d, group + inter_offset(f, b, r, i), 4);
      d ^= flip;
      std::memcpy(blk + f.block_byte(i), &d, 4);
    }
    std::memcpy(blk + f.tail_offset, group + tail_offset(f, nb, b, r),
                static_cast<size_t>(f.tail_bytes));
    if (f.q6_recode) detail::q6_recode_block<true>(blk);
  }
}

uint16_t read_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// The reference rows16 kernels: the fixed per-(row, token) sequences of vec_dot_impl.h.

// Q4_0 and Q8_0: per 32-block an exact int32 sum (the token's correction plus the unsigned quants
// times the activation bytes), then acc = fma(d_w * d_a, sum, acc).
template <DType kType>
void rows16_32_scalar(const uint8_t* group, int64_t nb, const detail::Rows16Token* tok, int n_tok,
                      float* out, size_t out_stride) {
  const Format& f = *format_of(kType);
  for (int t = 0; t < n_tok; ++t) {
    const auto* q = static_cast<const BlockQ8_0*>(tok[t].q);
    for (int r = 0; r < kRows16; ++r) {
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        const int8_t* a = q[b].qs;
        int32_t sum = tok[t].corr[b];
        for (int i = 0; i < f.inter_bytes(); ++i) {
          const uint8_t v = group[inter_offset(f, b, r, i)];
          if (kType == DType::kQ4_0) {
            sum += (v & 0x0F) * a[i] + (v >> 4) * a[16 + i];
          } else {
            sum += v * a[i];
          }
        }
        const float d = fp16_to_f32(read_u16(group + tail_offset(f, nb, b, r))) * tok[t].da[b];
        acc = std::fma(d, static_cast<float>(sum), acc);
      }
      out[static_cast<size_t>(t) * out_stride + static_cast<size_t>(r)] = acc;
    }
  }
}

// Q4_K: per super-block isum = sum_j sc_j * dot_j and msum = sum_j mn_j * bsum_j (exact), then
// v = fma(d, isum, -(dmin * msum)) and acc = fma(d_a, v, acc). (Fused on purpose: compilers
// contract a multiply-subtract of intrinsics, so the unfused form could not be kept in SIMD.)
void rows16_q4_k_scalar(const uint8_t* group, int64_t nb, const detail::Rows16Token* tok, int n_tok,
                        float* out, size_t out_stride) {
  const Format& f = *format_of(DType::kQ4_K);
  for (int t = 0; t < n_tok; ++t) {
    const auto* q = static_cast<const BlockQ8_K*>(tok[t].q);
    for (int r = 0; r < kRows16; ++r) {
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        uint8_t blk[144];
        for (int i = 0; i < f.inter_bytes(); ++i) {
          blk[f.block_byte(i)] = group[inter_offset(f, b, r, i)];
        }
        const uint8_t* scales = blk + 4;
        const uint8_t* qs = blk + 16;
        int32_t isum = 0, msum = 0;
        for (int j = 0; j < 8; ++j) {
          uint8_t sc, mn;
          detail::k4_scale_min(scales, j, &sc, &mn);
          int32_t dot = 0;
          for (int l = 0; l < 32; ++l) {
            const uint8_t v = qs[32 * (j / 2) + l];
            dot += ((j % 2 == 0) ? (v & 0x0F) : (v >> 4)) * q[b].qs[32 * j + l];
          }
          isum += sc * dot;
          msum += mn * (q[b].bsums[2 * j] + q[b].bsums[2 * j + 1]);
        }
        const uint8_t* tail = group + tail_offset(f, nb, b, r);
        const float d = fp16_to_f32(read_u16(tail));
        const float dmin = fp16_to_f32(read_u16(tail + 2));
        const float vm = dmin * static_cast<float>(msum);
        acc = std::fma(q[b].d, std::fma(d, static_cast<float>(isum), -vm), acc);
      }
      out[static_cast<size_t>(t) * out_stride + static_cast<size_t>(r)] = acc;
    }
  }
}

// Q6_K: per 16-element sub-block s an exact dot of the unsigned 6-bit quants plus the token's
// correction (-32 * bsum_s), isum = sum_s sc_s * dot_s, then acc = fma(d_a, d * isum, acc).
void rows16_q6_k_scalar(const uint8_t* group, int64_t nb, const detail::Rows16Token* tok, int n_tok,
                        float* out, size_t out_stride) {
  const Format& f = *format_of(DType::kQ6_K);
  for (int t = 0; t < n_tok; ++t) {
    const auto* q = static_cast<const BlockQ8_K*>(tok[t].q);
    for (int r = 0; r < kRows16; ++r) {
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        BlockQ6_K blk;
        auto* bytes = reinterpret_cast<uint8_t*>(&blk);
        for (int i = 0; i < f.inter_bytes(); ++i) {
          bytes[f.block_byte(i)] = group[inter_offset(f, b, r, i)];
        }
        detail::q6_recode_block<true>(bytes);
        uint8_t u[kQK_K];
        for (int h = 0; h < 2; ++h) {
          const uint8_t* ql = blk.ql + 64 * h;
          const uint8_t* qh = blk.qh + 32 * h;
          for (int l = 0; l < 32; ++l) {
            u[128 * h + l] = static_cast<uint8_t>((ql[l] & 0x0F) | ((qh[l] & 0x03) << 4));
            u[128 * h + l + 32] = static_cast<uint8_t>((ql[l + 32] & 0x0F) | ((qh[l] & 0x0C) << 2));
            u[128 * h + l + 64] = static_cast<uint8_t>((ql[l] >> 4) | (qh[l] & 0x30));
            u[128 * h + l + 96] = static_cast<uint8_t>((ql[l + 32] >> 4) | ((qh[l] & 0xC0) >> 2));
          }
        }
        int32_t isum = 0;
        for (int s = 0; s < 16; ++s) {
          int32_t dot = tok[t].corr[b * 16 + s];
          for (int l = 0; l < 16; ++l) dot += u[16 * s + l] * q[b].qs[16 * s + l];
          isum += blk.scales[s] * dot;
        }
        const float vd =
            fp16_to_f32(read_u16(group + tail_offset(f, nb, b, r))) * static_cast<float>(isum);
        acc = std::fma(q[b].d, vd, acc);
      }
      out[static_cast<size_t>(t) * out_stride + static_cast<size_t>(r)] = acc;
    }
  }
}

}  // namespace

bool rows16_supported(DType type, int64_t rows, int64_t cols) {
  const Format* f = format_of(type);
  return f != nullptr && rows > 0 && rows % kRows16 == 0 && cols > 0 && cols % f->block_elems == 0;
}

bool rows16_preferred(DType type, int64_t rows, int64_t cols) {
  return rows16_supported(type, rows, cols) && best_simd_level() == SimdLevel::kAvx512 &&
         detail::avx512_rows16(type) != nullptr;
}

void repack_rows16(DType type, const void* src, void* dst, int64_t rows, int64_t cols) {
  const Format& f = *format_of(type);
  const size_t row_bytes = dtype_row_bytes(type, static_cast<uint64_t>(cols));
  const int64_t nb = cols / f.block_elems;
  for (int64_t row = 0; row < rows; ++row) {
    const size_t group = static_cast<size_t>(row / kRows16) * kRows16 * row_bytes;
    pack_row(f, static_cast<const uint8_t*>(src) + static_cast<size_t>(row) * row_bytes, nb,
             static_cast<int>(row % kRows16), static_cast<uint8_t*>(dst) + group);
  }
}

void unpack_rows16(DType type, const void* src, void* dst, int64_t rows, int64_t cols) {
  const Format& f = *format_of(type);
  const size_t row_bytes = dtype_row_bytes(type, static_cast<uint64_t>(cols));
  const int64_t nb = cols / f.block_elems;
  for (int64_t row = 0; row < rows; ++row) {
    const size_t group = static_cast<size_t>(row / kRows16) * kRows16 * row_bytes;
    unpack_row(f, static_cast<const uint8_t*>(src) + group, nb, static_cast<int>(row % kRows16),
               static_cast<uint8_t*>(dst) + static_cast<size_t>(row) * row_bytes);
  }
}

void repack_rows16_in_place(DType type, void* data, int64_t rows, int64_t cols) {
  const size_t row_bytes = dtype_row_bytes(type, static_cast<uint64_t>(cols));
  const size_t group_bytes = kRows16 * row_bytes;
  std::vector<uint8_t> tmp(group_bytes);
  for (int64_t g = 0; g < rows / kRows16; ++g) {
    uint8_t* p = static_cast<uint8_t*>(data) + static_cast<size_t>(g) * group_bytes;
    std::memcpy(tmp.data(), p, group_bytes);
    repack_rows16(type, tmp.data(), p, kRows16, cols);
  }
}

void rows16_read_row(DType type, const void* data, int64_t cols, int64_t row, void* dst) {
  const Format& f = *format_of(type);
  const size_t row_bytes = dtype_row_bytes(type, static_cast<uint64_t>(cols));
  const auto* group =
      static_cast<const uint8_t*>(data) + static_cast<size_t>(row / kRows16) * kRows16 * row_bytes;
  unpack_row(f, group, cols / f.block_elems, static_cast<int>(row % kRows16),
             static_cast<uint8_t*>(dst));
}

namespace detail {

const Rows16Format* rows16_format(DType weight_type) {
  return format_of(weight_type);
}

Rows16Fn scalar_rows16(DType weight_type) {
  switch (weight_type) {
    case DType::kQ4_0:
      return rows16_32_scalar<DType::kQ4_0>;
    case DType::kQ8_0:
      return rows16_32_scalar<DType::kQ8_0>;
    case DType::kQ4_K:
      return rows16_q4_k_scalar;
    case DType::kQ6_K:
      return rows16_q6_k_scalar;
    default:
      return nullptr;
  }
}

int rows16_block_elems(DType weight_type) {
  const Format* f = format_of(weight_type);
  return f != nullptr ? f->block_elems : 0;
}

int rows16_corr_per_block(DType weight_type) {
  switch (weight_type) {
    case DType::kQ4_K:
      return 4;
    case DType::kQ6_K:
      return 16;
    default:
      return 1;
  }
}

void rows16_prepare(DType weight_type, const void* act, int64_t nb, int32_t* corr, float* da) {
  if (weight_type == DType::kQ4_K || weight_type == DType::kQ6_K) {
    const auto* q = static_cast<const BlockQ8_K*>(act);
    for (int64_t b = 0; b < nb; ++b) {
      da[b] = q[b].d;
      const int16_t* bs = q[b].bsums;
      if (weight_type == DType::kQ6_K) {
        for (int s = 0; s < 16; ++s) corr[b * 16 + s] = -32 * bs[s];
        continue;
      }
      // Q4_K: the 32-element sums bs_j as int16 pairs (bs_j, bs_j+2), for vpdpwssd against the
      // mins paired the same way: (0,2) (1,3) (4,6) (5,7).
      int32_t s32[8];
      for (int j = 0; j < 8; ++j) s32[j] = bs[2 * j] + bs[2 * j + 1];
      static constexpr int kPair[4] = {0, 1, 4, 5};
      for (int k = 0; k < 4; ++k) {
        const auto lo = static_cast<uint16_t>(static_cast<int16_t>(s32[kPair[k]]));
        const auto hi = static_cast<uint16_t>(static_cast<int16_t>(s32[kPair[k] + 2]));
        corr[b * 4 + k] =
            static_cast<int32_t>(static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16));
      }
    }
    return;
  }
  const int32_t offset = weight_type == DType::kQ8_0 ? -128 : -8;
  const auto* q = static_cast<const BlockQ8_0*>(act);
  for (int64_t b = 0; b < nb; ++b) {
    int32_t s = 0;
    for (int j = 0; j < 32; ++j) s += q[b].qs[j];
    corr[b] = offset * s;
    da[b] = fp16_to_f32(q[b].d);
  }
}

}  // namespace detail
}  // namespace enclave::kernels
