// Float kernels of the forward pass: RMSNorm, RoPE (NORM/NEOX pairing, frequency factors, YaRN),
// softmax, SiLU/SwiGLU, element-wise add/scale and fp16/bf16 <-> f32 row conversion. Each has a
// scalar reference (`level` = kScalar) and SIMD paths chosen at run time.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/vec_dot.h"

namespace enclave::kernels {

// y = x / sqrt(mean(x^2) + eps) * weight (weight may be null: no gain). y may alias x.
void rms_norm(const float* x, const float* weight, float* y, int64_t n, float eps);
void rms_norm(const float* x, const float* weight, float* y, int64_t n, float eps, SimdLevel level);

struct RopeParams {
  int n_rot = 0;      // rotated dims per head (even, <= head_dim)
  bool neox = false;  // false: pairs (2i, 2i+1) (llama/deepseek); true: (i, i + n_rot/2) (qwen2)
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;              // 1 / scaling factor (linear and YaRN)
  const float* freq_factors = nullptr;  // n_rot/2 divisors of theta (Llama-3.1 rope_freqs), or null
  float ext_factor = 0.0f;              // YaRN extrapolation mix (0 disables YaRN)
  float attn_factor = 1.0f;             // multiplies cos/sin
  float beta_fast = 32.0f;
  float beta_slow = 1.0f;
  int n_ctx_orig = 0;  // original training context (YaRN)
};

// Rotates x in place: x is [n_tokens][n_heads][head_dim], positions is [n_tokens].
void rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, const int32_t* positions,
          const RopeParams& params);

// Numerically stable softmax over x[0..n), in place.
void softmax(float* x, int64_t n);
void softmax(float* x, int64_t n, SimdLevel level);

// y = x * sigmoid(x); y may alias x.
void silu(const float* x, float* y, int64_t n);
void silu(const float* x, float* y, int64_t n, SimdLevel level);
// y = silu(gate) * up; y may alias either input.
void swiglu(const float* gate, const float* up, float* y, int64_t n);
void swiglu(const float* gate, const float* up, float* y, int64_t n, SimdLevel level);

// y = a + b; y = x * s. Outputs may alias inputs.
void add(const float* a, const float* b, float* y, int64_t n);
void scale(const float* x, float s, float* y, int64_t n);

void fp16_to_f32_row(const uint16_t* x, float* y, int64_t n);
void f32_to_fp16_row(const float* x, uint16_t* y, int64_t n);
void bf16_to_f32_row(const uint16_t* x, float* y, int64_t n);
void f32_to_bf16_row(const float* x, uint16_t* y, int64_t n);

}  // namespace enclave::kernels
