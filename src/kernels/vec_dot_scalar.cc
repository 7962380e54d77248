// Scalar reference kernels: activation quantizers and every weight x activation dot product.
// These define the results the SIMD paths are tested against (integer parts exactly).
#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "kernels/quant_blocks.h"
#include "kernels/vec_dot_impl.h"

namespace enclave::kernels::detail {
namespace {

// ---- activation quantizers -------------------------------------------------------------------

void quantize_q8_0(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_0*>(dst);
  for (int64_t i = 0; i < n / kQK8_0; ++i, x += kQK8_0) {
    float amax = 0.0f;
    for (int j = 0; j < kQK8_0; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_fp16(d);
    for (int j = 0; j < kQK8_0; ++j) y[i].qs[j] = static_cast<int8_t>(std::roundf(x[j] * id));
  }
}

void quantize_q8_1(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_1*>(dst);
  for (int64_t i = 0; i < n / kQK8_1; ++i, x += kQK8_1) {
    float amax = 0.0f;
    for (int j = 0; j < kQK8_1; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int j = 0; j < kQK8_1; ++j) {
      const int q = static_cast<int>(std::roundf(x[j] * id));
      y[i].qs[j] = static_cast<int8_t>(q);
      sum += q;
    }
    y[i].d = f32_to_fp16(d);
    y[i].s = f32_to_fp16(static_cast<float>(sum) * d);
  }
}

void quantize_q8_k(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_K*>(dst);
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQK_K; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) {
        amax = ax;
        max = x[j];
      }
    }
    if (amax == 0.0f) {
      std::memset(&y[i], 0, sizeof(BlockQ8_K));
      continue;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < kQK_K; ++j) {
      const int v = static_cast<int>(std::nearbyint(iscale * x[j]));  // round half to even
      y[i].qs[j] = static_cast<int8_t>(v < 127 ? v : 127);
    }
    for (int k = 0; k < kQK_K / 16; ++k) {
      int s = 0;
      for (int j = 0; j < 16; ++j) s += y[i].qs[16 * k + j];
      y[i].bsums[k] = static_cast<int16_t>(s);
    }
    y[i].d = 1.0f / iscale;
  }
}

void convert_f16(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) y[i] = f32_to_fp16(x[i]);
}
void convert_bf16(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) y[i] = f32_to_bf16(x[i]);
}
void copy_f32(const float* x, void* dst, int64_t n) {
  std::memcpy(dst, x, static_cast<size_t>(n) * sizeof(float));
}

// ---- dot products ------------------------------------------------------------------------------

float dot_f32(const void* w, const void* a, int64_t n) {
  const auto* x = static_cast<const float*>(w);
  const auto* y = static_cast<const float*>(a);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * y[i];
  return static_cast<float>(sum);
}
float dot_f16(const void* w, const void* a, int64_t n) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const uint16_t*>(a);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(fp16_to_f32(x[i])) * fp16_to_f32(y[i]);
  return static_cast<float>(sum);
}
float dot_bf16(const void* w, const void* a, int64_t n) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const uint16_t*>(a);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(bf16_to_f32(x[i])) * bf16_to_f32(y[i]);
  return static_cast<float>(sum);
}

// Q4_0 / Q5_0 / Q8_0 x Q8_0: d_w * d_a * sum(q_w * q_a) per block.
template <DType kType>
float dot_x_q8_0(const void* w, const void* a, int64_t n) {
  const auto* y = static_cast<const BlockQ8_0*>(a);
  UnpackedBlock ub;
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQK8_0; ++i) {
    unpack_block(kType, w, i, &ub);
    int isum = 0;
    for (int j = 0; j < kQK8_0; ++j) isum += ub.q[j] * y[i].qs[j];
    sum += (ub.d * fp16_to_f32(y[i].d)) * static_cast<float>(isum);
  }
  return sum;
}

// Q4_1 / Q5_1 x Q8_1: d_w * d_a * sum(q_w * q_a) + m_w * s_a.
template <DType kType>
float dot_x_q8_1(const void* w, const void* a, int64_t n) {
  const auto* y = static_cast<const BlockQ8_1*>(a);
  UnpackedBlock ub;
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQK8_1; ++i) {
    unpack_block(kType, w, i, &ub);
    int isum = 0;
    for (int j = 0; j < kQK8_1; ++j) isum += ub.q[j] * y[i].qs[j];
    sum += (ub.d * fp16_to_f32(y[i].d)) * static_cast<float>(isum) + ub.dmin * fp16_to_f32(y[i].s);
  }
  return sum;
}

// K-quants x Q8_K: d_a * (d * sum_sub(sc * sum(q_w*q_a)) - dmin * sum_sub(mn * bsum)).
template <DType kType>
float dot_x_q8_k(const void* w, const void* a, int64_t n) {
  const auto* y = static_cast<const BlockQ8_K*>(a);
  UnpackedBlock ub;
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    unpack_block(kType, w, i, &ub);
    int isum = 0, msum = 0;
    for (int s = 0; s < ub.n_sub; ++s) {
      int sub = 0;
      for (int j = 0; j < ub.sub_len; ++j)
        sub += ub.q[s * ub.sub_len + j] * y[i].qs[s * ub.sub_len + j];
      isum += ub.scale[s] * sub;
      int bs = 0;
      for (int k = 0; k < ub.sub_len / 16; ++k) bs += y[i].bsums[s * ub.sub_len / 16 + k];
      msum += ub.min[s] * bs;
    }
    sum += y[i].d * (ub.d * static_cast<float>(isum) - ub.dmin * static_cast<float>(msum));
  }
  return sum;
}

template <typename B>
const B& block_at(const void* row, int64_t i) {
  return static_cast<const B*>(row)[i];
}

uint32_t read_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

}  // namespace

void unpack_block(DType type, const void* row, int64_t bi, UnpackedBlock* out) {
  for (int s = 0; s < 16; ++s) out->scale[s] = 1, out->min[s] = 0;
  out->sub_len = 32;
  out->n_sub = 1;
  out->dmin = 0.0f;
  int8_t* q = out->q;
  switch (type) {
    case DType::kQ4_0: {
      const auto& b = block_at<BlockQ4_0>(row, bi);
      out->d = fp16_to_f32(b.d);
      for (int j = 0; j < 16; ++j) {
        q[j] = static_cast<int8_t>((b.qs[j] & 0x0F) - 8);
        q[j + 16] = static_cast<int8_t>((b.qs[j] >> 4) - 8);
      }
      return;
    }
    case DType::kQ4_1: {
      const auto& b = block_at<BlockQ4_1>(row, bi);
      out->d = fp16_to_f32(b.d);
      out->dmin = fp16_to_f32(b.m);
      for (int j = 0; j < 16; ++j) {
        q[j] = static_cast<int8_t>(b.qs[j] & 0x0F);
        q[j + 16] = static_cast<int8_t>(b.qs[j] >> 4);
      }
      return;
    }
    case DType::kQ5_0:
    case DType::kQ5_1: {
      const uint8_t* qs;
      uint32_t qh;
      int offset = 0;
      if (type == DType::kQ5_0) {
        const auto& b = block_at<BlockQ5_0>(row, bi);
        out->d = fp16_to_f32(b.d);
        qh = read_u32(b.qh);
        qs = b.qs;
        offset = 16;
      } else {
        const auto& b = block_at<BlockQ5_1>(row, bi);
        out->d = fp16_to_f32(b.d);
        out->dmin = fp16_to_f32(b.m);
        qh = read_u32(b.qh);
        qs = b.qs;
      }
      for (int j = 0; j < 16; ++j) {
        const int h0 = static_cast<int>((qh >> j) & 1u) << 4;
        const int h1 = static_cast<int>((qh >> (j + 16)) & 1u) << 4;
        q[j] = static_cast<int8_t>(((qs[j] & 0x0F) | h0) - offset);
        q[j + 16] = static_cast<int8_t>(((qs[j] >> 4) | h1) - offset);
      }
      return;
    }
    case DType::kQ8_0: {
      const auto& b = block_at<BlockQ8_0>(row, bi);
      out->d = fp16_to_f32(b.d);
      std::memcpy(q, b.qs, 32);
      return;
    }
    case DType::kQ2_K: {
      const auto& b = block_at<BlockQ2_K>(row, bi);
      out->d = fp16_to_f32(b.d);
      out->dmin = fp16_to_f32(b.dmin);
      out->sub_len = 16;
      out->n_sub = 16;
      int is = 0, e = 0;
      for (int half = 0; half < 2; ++half) {
        const uint8_t* qs = b.qs + 32 * half;
        for (int shift = 0; shift < 8; shift += 2) {
          for (int part = 0; part < 2; ++part) {
            out->scale[is] = b.scales[is] & 0x0F;
            out->min[is] = b.scales[is] >> 4;
            ++is;
            for (int l = 0; l < 16; ++l)
              q[e++] = static_cast<int8_t>((qs[l + 16 * part] >> shift) & 3);
          }
        }
      }
      return;
    }
    case DType::kQ3_K: {
      const auto& b = block_at<BlockQ3_K>(row, bi);
      out->d = fp16_to_f32(b.d);
      out->sub_len = 16;
      out->n_sub = 16;
      int8_t sc[16];
      q3k_scales(b.scales, sc);
      for (int s = 0; s < 16; ++s) out->scale[s] = sc[s];
      int e = 0;
      uint8_t m = 1;
      for (int half = 0; half < 2; ++half) {
        const uint8_t* qs = b.qs + 32 * half;
        for (int shift = 0; shift < 8; shift += 2, m = static_cast<uint8_t>(m << 1)) {
          for (int part = 0; part < 2; ++part) {
            for (int l = 0; l < 16; ++l) {
              const int lo = (qs[l + 16 * part] >> shift) & 3;
              q[e++] = static_cast<int8_t>(lo - ((b.hmask[l + 16 * part] & m) ? 0 : 4));
            }
          }
        }
      }
      return;
    }
    case DType::kQ4_K:
    case DType::kQ5_K: {
      const uint8_t* scales;
      const uint8_t* qs;
      const uint8_t* qh = nullptr;
      if (type == DType::kQ4_K) {
        const auto& b = block_at<BlockQ4_K>(row, bi);
        out->d = fp16_to_f32(b.d);
        out->dmin = fp16_to_f32(b.dmin);
        scales = b.scales;
        qs = b.qs;
      } else {
        const auto& b = block_at<BlockQ5_K>(row, bi);
        out->d = fp16_to_f32(b.d);
        out->dmin = fp16_to_f32(b.dmin);
        scales = b.scales;
        qs = b.qs;
        qh = b.qh;
      }
      out->sub_len = 32;
      out->n_sub = 8;
      for (int j = 0; j < 8; ++j) {
        uint8_t sc, mn;
        k4_scale_min(scales, j, &sc, &mn);
        out->scale[j] = sc;
        out->min[j] = mn;
      }
      for (int c = 0; c < 4; ++c) {
        for (int l = 0; l < 32; ++l) {
          int lo = qs[32 * c + l] & 0x0F;
          int hi = qs[32 * c + l] >> 4;
          if (qh != nullptr) {
            if (qh[l] & (1u << (2 * c))) lo += 16;
            if (qh[l] & (1u << (2 * c + 1))) hi += 16;
          }
          q[64 * c + l] = static_cast<int8_t>(lo);
          q[64 * c + 32 + l] = static_cast<int8_t>(hi);
        }
      }
      return;
    }
    case DType::kQ6_K: {
      const auto& b = block_at<BlockQ6_K>(row, bi);
      out->d = fp16_to_f32(b.d);
      out->sub_len = 16;
      out->n_sub = 16;
      for (int s = 0; s < 16; ++s) out->scale[s] = b.scales[s];
      for (int n = 0; n < 2; ++n) {
        const uint8_t* ql = b.ql + 64 * n;
        const uint8_t* qh = b.qh + 32 * n;
        int8_t* o = q + 128 * n;
        for (int l = 0; l < 32; ++l) {
          o[l] = static_cast<int8_t>(((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32);
          o[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32);
          o[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
          o[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
      }
      return;
    }
    default:
      out->d = 0.0f;
      std::memset(q, 0, sizeof(out->q));
      return;
  }
}

void dequantize_row_ref(DType type, const void* row, float* dst, int64_t n) {
  switch (type) {
    case DType::kF32:
      std::memcpy(dst, row, static_cast<size_t>(n) * 4);
      return;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_f32(static_cast<const uint16_t*>(row)[i]);
      return;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(static_cast<const uint16_t*>(row)[i]);
      return;
    default:
      break;
  }
  const int64_t block = dtype_traits(type).block_elems;
  UnpackedBlock ub;
  for (int64_t i = 0; i < n / block; ++i) {
    unpack_block(type, row, i, &ub);
    for (int j = 0; j < block; ++j) {
      const int s = j / ub.sub_len;
      float v;
      if (type == DType::kQ4_1 || type == DType::kQ5_1) {
        v = ub.d * ub.q[j] + ub.dmin;
      } else {
        v = ub.d * static_cast<float>(ub.scale[s]) * ub.q[j] -
            ub.dmin * static_cast<float>(ub.min[s]);
      }
      dst[i * block + j] = v;
    }
  }
}

VecDotFn scalar_vec_dot(DType t) {
  switch (t) {
    case DType::kF32:
      return dot_f32;
    case DType::kF16:
      return dot_f16;
    case DType::kBF16:
      return dot_bf16;
    case DType::kQ4_0:
      return dot_x_q8_0<DType::kQ4_0>;
    case DType::kQ5_0:
      return dot_x_q8_0<DType::kQ5_0>;
    case DType::kQ8_0:
      return dot_x_q8_0<DType::kQ8_0>;
    case DType::kQ4_1:
      return dot_x_q8_1<DType::kQ4_1>;
    case DType::kQ5_1:
      return dot_x_q8_1<DType::kQ5_1>;
    case DType::kQ2_K:
      return dot_x_q8_k<DType::kQ2_K>;
    case DType::kQ3_K:
      return dot_x_q8_k<DType::kQ3_K>;
    case DType::kQ4_K:
      return dot_x_q8_k<DType::kQ4_K>;
    case DType::kQ5_K:
      return dot_x_q8_k<DType::kQ5_K>;
    case DType::kQ6_K:
      return dot_x_q8_k<DType::kQ6_K>;
    default:
      return nullptr;
  }
}

QuantizeActFn scalar_quantize(DType t) {
  switch (t) {
    case DType::kQ8_0:
      return quantize_q8_0;
    case DType::kQ8_1:
      return quantize_q8_1;
    case DType::kQ8_K:
      return quantize_q8_k;
    case DType::kF16:
      return convert_f16;
    case DType::kBF16:
      return convert_bf16;
    case DType::kF32:
      return copy_f32;
    default:
      return nullptr;
  }
}

}  // namespace enclave::kernels::detail
