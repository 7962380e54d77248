// Row conversion for the plain float types and the 32-element block types (Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0, Q8_1), plus the dispatch for every type. The super-block (K) types live in quantize_k.cc.
// Every arithmetic expression keeps ggml's operand order; this file is compiled without FMA
// contraction (see CMakeLists.txt) so each operation rounds once, as in the reference.
#include "kernels/quantize.h"

#include <cassert>
#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "kernels/quant_blocks.h"
#include "kernels/quantize_internal.h"

namespace enclave::kernels {
namespace {

using quant_detail::round_half_away;

// ---- plain float types ----

void f32_to_f16_row(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<uint8_t*>(dst);
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = f32_to_fp16(x[i]);
    std::memcpy(y + 2 * i, &h, 2);
  }
}

void f32_to_bf16_row(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<uint8_t*>(dst);
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = f32_to_bf16(x[i]);
    std::memcpy(y + 2 * i, &h, 2);
  }
}

void f16_to_f32_row(const void* src, float* y, int64_t n) {
  const auto* s = static_cast<const uint8_t*>(src);
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, s + 2 * i, 2);
    y[i] = fp16_to_f32(h);
  }
}

void bf16_to_f32_row(const void* src, float* y, int64_t n) {
  const auto* s = static_cast<const uint8_t*>(src);
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, s + 2 * i, 2);
    y[i] = bf16_to_f32(h);
  }
}

// ---- 32-element blocks: quantization (ggml's *_ref round-to-nearest encoders) ----

// Value with the largest magnitude (first one on ties), sign kept.
inline float signed_absmax(const float* x, int n) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int j = 0; j < n; ++j) {
    const float a = std::fabs(x[j]);
    if (amax < a) {
      amax = a;
      max = x[j];
    }
  }
  return max;
}

inline float absmax(const float* x, int n) {
  float amax = 0.0f;
  for (int j = 0; j < n; ++j) {
    const float a = std::fabs(x[j]);
    amax = amax > a ? amax : a;  // operand order of ggml's MAX(amax, a)
  }
  return amax;
}

inline void min_max(const float* x, int n, float* min_out, float* max_out) {
  float mn = 3.402823466e+38f;
  float mx = -3.402823466e+38f;
  for (int j = 0; j < n; ++j) {
    if (x[j] < mn) mn = x[j];
    if (x[j] > mx) mx = x[j];
  }
  *min_out = mn;
  *max_out = mx;
}

void quantize_q4_0(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ4_0*>(dst);
  for (int64_t b = 0; b < n / kQK4_0; ++b, x += kQK4_0) {
    const float d = signed_absmax(x, kQK4_0) / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_fp16(d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      // Truncation after +8.5 is ggml's rounding here (values are >= 0.5 by construction).
      int q0 = static_cast<int>(x[j] * id + 8.5f);
      int q1 = static_cast<int>(x[j + kQK4_0 / 2] * id + 8.5f);
      q0 = q0 > 15 ? 15 : q0;
      q1 = q1 > 15 ? 15 : q1;
      y[b].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void quantize_q4_1(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ4_1*>(dst);
  for (int64_t b = 0; b < n / kQK4_1; ++b, x += kQK4_1) {
    float mn, mx;
    min_max(x, kQK4_1, &mn, &mx);
    const float d = (mx - mn) / 15;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_fp16(d);
    y[b].m = f32_to_fp16(mn);
    for (int j = 0; j < kQK4_1 / 2; ++j) {
      int q0 = static_cast<int>((x[j] - mn) * id + 0.5f);
      int q1 = static_cast<int>((x[j + kQK4_1 / 2] - mn) * id + 0.5f);
      q0 = q0 > 15 ? 15 : q0;
      q1 = q1 > 15 ? 15 : q1;
      y[b].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void quantize_q5_0(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ5_0*>(dst);
  for (int64_t b = 0; b < n / kQK5_0; ++b, x += kQK5_0) {
    const float d = signed_absmax(x, kQK5_0) / -16;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_fp16(d);
    uint32_t qh = 0;
    for (int j = 0; j < kQK5_0 / 2; ++j) {
      int q0 = static_cast<int>(x[j] * id + 16.5f);
      int q1 = static_cast<int>(x[j + kQK5_0 / 2] * id + 16.5f);
      q0 = q0 > 31 ? 31 : q0;
      q1 = q1 > 31 ? 31 : q1;
      y[b].qs[j] = static_cast<uint8_t>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
      qh |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + kQK5_0 / 2);
    }
    std::memcpy(y[b].qh, &qh, 4);
  }
}

void quantize_q5_1(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ5_1*>(dst);
  for (int64_t b = 0; b < n / kQK5_1; ++b, x += kQK5_1) {
    float mn, mx;
    min_max(x, kQK5_1, &mn, &mx);
    const float d = (mx - mn) / 31;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_fp16(d);
    y[b].m = f32_to_fp16(mn);
    uint32_t qh = 0;
    for (int j = 0; j < kQK5_1 / 2; ++j) {
      // No clamp in the reference: (max - min) * id rounds to at most 31.5 - epsilon.
      const int q0 = static_cast<uint8_t>(static_cast<int>((x[j] - mn) * id + 0.5f));
      const int q1 = static_cast<uint8_t>(static_cast<int>((x[j + kQK5_1 / 2] - mn) * id + 0.5f));
      y[b].qs[j] = static_cast<uint8_t>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
      qh |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + kQK5_1 / 2);
    }
    std::memcpy(y[b].qh, &qh, 4);
  }
}

void quantize_q8_0(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_0*>(dst);
  for (int64_t b = 0; b < n / kQK8_0; ++b, x += kQK8_0) {
    const float d = absmax(x, kQK8_0) / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_fp16(d);
    for (int j = 0; j < kQK8_0; ++j) y[b].qs[j] = static_cast<int8_t>(round_half_away(x[j] * id));
  }
}

void quantize_q8_1(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_1*>(dst);
  for (int64_t b = 0; b < n / kQK8_1; ++b, x += kQK8_1) {
    const float d = absmax(x, kQK8_1) / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_fp16(d);
    int sum = 0;
    for (int j = 0; j < kQK8_1; ++j) {
      y[b].qs[j] = static_cast<int8_t>(round_half_away(x[j] * id));
      sum += y[b].qs[j];
    }
    y[b].s = f32_to_fp16(static_cast<float>(sum) * d);
  }
}

// ---- 32-element blocks: dequantization ----

void dequantize_q4_0(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ4_0*>(src);
  for (int64_t b = 0; b < n / kQK4_0; ++b, y += kQK4_0) {
    const float d = fp16_to_f32(x[b].d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      y[j] = static_cast<float>((x[b].qs[j] & 0x0F) - 8) * d;
      y[j + kQK4_0 / 2] = static_cast<float>((x[b].qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_q4_1(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ4_1*>(src);
  for (int64_t b = 0; b < n / kQK4_1; ++b, y += kQK4_1) {
    const float d = fp16_to_f32(x[b].d);
    const float m = fp16_to_f32(x[b].m);
    for (int j = 0; j < kQK4_1 / 2; ++j) {
      y[j] = static_cast<float>(x[b].qs[j] & 0x0F) * d + m;
      y[j + kQK4_1 / 2] = static_cast<float>(x[b].qs[j] >> 4) * d + m;
    }
  }
}

// The 5th bit of element j is bit j of qh (elements 0..31).
inline int q5_value(const uint8_t* qs, uint32_t qh, int j) {
  const int lo = j < 16 ? (qs[j] & 0x0F) : (qs[j - 16] >> 4);
  return lo | static_cast<int>(((qh >> j) & 1u) << 4);
}

void dequantize_q5_0(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ5_0*>(src);
  for (int64_t b = 0; b < n / kQK5_0; ++b, y += kQK5_0) {
    const float d = fp16_to_f32(x[b].d);
    uint32_t qh;
    std::memcpy(&qh, x[b].qh, 4);
    for (int j = 0; j < kQK5_0; ++j) y[j] = static_cast<float>(q5_value(x[b].qs, qh, j) - 16) * d;
  }
}

void dequantize_q5_1(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ5_1*>(src);
  for (int64_t b = 0; b < n / kQK5_1; ++b, y += kQK5_1) {
    const float d = fp16_to_f32(x[b].d);
    const float m = fp16_to_f32(x[b].m);
    uint32_t qh;
    std::memcpy(&qh, x[b].qh, 4);
    for (int j = 0; j < kQK5_1; ++j) y[j] = static_cast<float>(q5_value(x[b].qs, qh, j)) * d + m;
  }
}

void dequantize_q8_0(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ8_0*>(src);
  for (int64_t b = 0; b < n / kQK8_0; ++b, y += kQK8_0) {
    const float d = fp16_to_f32(x[b].d);
    for (int j = 0; j < kQK8_0; ++j) y[j] = static_cast<float>(x[b].qs[j]) * d;
  }
}

void dequantize_q8_1(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ8_1*>(src);
  for (int64_t b = 0; b < n / kQK8_1; ++b, y += kQK8_1) {
    const float d = fp16_to_f32(x[b].d);
    for (int j = 0; j < kQK8_1; ++j) y[j] = static_cast<float>(x[b].qs[j]) * d;
  }
}

}  // namespace

bool can_dequantize(DType type) {
  switch (type) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
    case DType::kQ4_0:
    case DType::kQ4_1:
    case DType::kQ5_0:
    case DType::kQ5_1:
    case DType::kQ8_0:
    case DType::kQ8_1:
    case DType::kQ2_K:
    case DType::kQ3_K:
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K:
    case DType::kQ8_K:
      return true;
    default:
      return false;
  }
}

bool can_quantize(DType type) {
  return can_dequantize(type);
}

void dequantize_row(DType type, const void* src, float* dst, int64_t n) {
  assert(n % dtype_traits(type).block_elems == 0);
  switch (type) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::kF16:
      return f16_to_f32_row(src, dst, n);
    case DType::kBF16:
      return bf16_to_f32_row(src, dst, n);
    case DType::kQ4_0:
      return dequantize_q4_0(src, dst, n);
    case DType::kQ4_1:
      return dequantize_q4_1(src, dst, n);
    case DType::kQ5_0:
      return dequantize_q5_0(src, dst, n);
    case DType::kQ5_1:
      return dequantize_q5_1(src, dst, n);
    case DType::kQ8_0:
      return dequantize_q8_0(src, dst, n);
    case DType::kQ8_1:
      return dequantize_q8_1(src, dst, n);
    case DType::kQ2_K:
      return quant_detail::dequantize_q2_k(src, dst, n);
    case DType::kQ3_K:
      return quant_detail::dequantize_q3_k(src, dst, n);
    case DType::kQ4_K:
      return quant_detail::dequantize_q4_k(src, dst, n);
    case DType::kQ5_K:
      return quant_detail::dequantize_q5_k(src, dst, n);
    case DType::kQ6_K:
      return quant_detail::dequantize_q6_k(src, dst, n);
    case DType::kQ8_K:
      return quant_detail::dequantize_q8_k(src, dst, n);
    default:
      assert(false && "dequantize_row: type not supported (check can_dequantize)");
      return;
  }
}

size_t quantize_row(DType type, const float* src, void* dst, int64_t n) {
  assert(n % dtype_traits(type).block_elems == 0);
  switch (type) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      break;
    case DType::kF16:
      f32_to_f16_row(src, dst, n);
      break;
    case DType::kBF16:
      f32_to_bf16_row(src, dst, n);
      break;
    case DType::kQ4_0:
      quantize_q4_0(src, dst, n);
      break;
    case DType::kQ4_1:
      quantize_q4_1(src, dst, n);
      break;
    case DType::kQ5_0:
      quantize_q5_0(src, dst, n);
      break;
    case DType::kQ5_1:
      quantize_q5_1(src, dst, n);
      break;
    case DType::kQ8_0:
      quantize_q8_0(src, dst, n);
      break;
    case DType::kQ8_1:
      quantize_q8_1(src, dst, n);
      break;
    case DType::kQ2_K:
      quant_detail::quantize_q2_k(src, dst, n);
      break;
    case DType::kQ3_K:
      quant_detail::quantize_q3_k(src, dst, n);
      break;
    case DType::kQ4_K:
      quant_detail::quantize_q4_k(src, dst, n);
      break;
    case DType::kQ5_K:
      quant_detail::quantize_q5_k(src, dst, n);
      break;
    case DType::kQ6_K:
      quant_detail::quantize_q6_k(src, dst, n);
      break;
    case DType::kQ8_K:
      quant_detail::quantize_q8_k(src, dst, n);
      break;
    default:
      assert(false && "quantize_row: type not supported (check can_quantize)");
      return 0;
  }
  return dtype_row_bytes(type, static_cast<uint64_t>(n));
}

}  // namespace enclave::kernels
