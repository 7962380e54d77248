#include "kernels/ops.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "core/fp16.h"
#include "kernels/ops_impl.h"

namespace enclave::kernels {
namespace {
SimdLevel clamp_level(SimdLevel level) {
  const SimdLevel best = best_simd_level();
  return static_cast<int>(level) > static_cast<int>(best) ? best : level;
}
bool use_avx512(SimdLevel level) {
  return clamp_level(level) == SimdLevel::kAvx512;
}

// YaRN correction dimension: the pair index whose wavelength fits n_rot turns into n_ctx_orig.
float yarn_corr_dim(int n_rot, int n_ctx_orig, float n_turns, float base) {
  return static_cast<float>(n_rot) *
         std::log(static_cast<float>(n_ctx_orig) / (n_turns * 2.0f * std::numbers::pi_v<float>)) /
         (2.0f * std::log(base));
}
}  // namespace

void rms_norm(const float* x, const float* weight, float* y, int64_t n, float eps) {
  rms_norm(x, weight, y, n, eps, best_simd_level());
}

void rms_norm(const float* x, const float* weight, float* y, int64_t n, float eps,
              SimdLevel level) {
  if (use_avx512(level)) return detail::rms_norm_avx512(x, weight, y, n, eps);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  const float s = 1.0f / std::sqrt(static_cast<float>(sum / static_cast<double>(n)) + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * s * (weight != nullptr ? weight[i] : 1.0f);
}

void rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, const int32_t* positions,
          const RopeParams& p) {
  const int n_pairs = p.n_rot / 2;
  if (n_pairs <= 0) return;
  std::vector<float> cos_v(static_cast<size_t>(n_pairs)), sin_v(static_cast<size_t>(n_pairs));
  const float theta_scale = std::pow(p.freq_base, -2.0f / static_cast<float>(p.n_rot));
  float corr_low = 0.0f, corr_high = 0.0f;
  if (p.ext_factor != 0.0f) {
    corr_low =
        std::max(0.0f, std::floor(yarn_corr_dim(p.n_rot, p.n_ctx_orig, p.beta_fast, p.freq_base)));
    corr_high = std::min(static_cast<float>(p.n_rot - 1),
                         std::ceil(yarn_corr_dim(p.n_rot, p.n_ctx_orig, p.beta_slow, p.freq_base)));
  }
  float mscale = p.attn_factor;
  if (p.ext_factor != 0.0f) mscale *= 1.0f + 0.1f * std::log(1.0f / p.freq_scale);

  for (int64_t t = 0; t < n_tokens; ++t) {
    float theta = static_cast<float>(positions[t]);
    for (int i = 0; i < n_pairs; ++i, theta *= theta_scale) {
      const float extrap = p.freq_factors != nullptr ? theta / p.freq_factors[i] : theta;
      const float interp = p.freq_scale * extrap;
      float th = interp;
      if (p.ext_factor != 0.0f) {
        const float y = (static_cast<float>(i) - corr_low) / std::max(0.001f, corr_high - corr_low);
        const float ramp = 1.0f - std::min(1.0f, std::max(0.0f, y));
        const float mix = ramp * p.ext_factor;
        th = interp * (1.0f - mix) + extrap * mix;
      }
      cos_v[static_cast<size_t>(i)] = std::cos(th) * mscale;
      sin_v[static_cast<size_t>(i)] = std::sin(th) * mscale;
    }
    for (int64_t h = 0; h < n_heads; ++h) {
      float* v = x + (t * n_heads + h) * head_dim;
      const int stride = p.neox ? n_pairs : 1;
      for (int i = 0; i < n_pairs; ++i) {
        const int i0 = p.neox ? i : 2 * i;
        const float x0 = v[i0], x1 = v[i0 + stride];
        v[i0] = x0 * cos_v[static_cast<size_t>(i)] - x1 * sin_v[static_cast<size_t>(i)];
        v[i0 + stride] = x0 * sin_v[static_cast<size_t>(i)] + x1 * cos_v[static_cast<size_t>(i)];
      }
    }
  }
}

void softmax(float* x, int64_t n) {
  softmax(x, n, best_simd_level());
}

void softmax(float* x, int64_t n, SimdLevel level) {
  if (n <= 0) return;
  if (use_avx512(level)) return detail::softmax_avx512(x, n);
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void silu(const float* x, float* y, int64_t n) {
  silu(x, y, n, best_simd_level());
}

void silu(const float* x, float* y, int64_t n, SimdLevel level) {
  if (use_avx512(level)) return detail::silu_avx512(x, y, n);
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] / (1.0f + std::exp(-x[i]));
}

void swiglu(const float* gate, const float* up, float* y, int64_t n) {
  swiglu(gate, up, y, n, best_simd_level());
}

void swiglu(const float* gate, const float* up, float* y, int64_t n, SimdLevel level) {
  if (use_avx512(level)) return detail::swiglu_avx512(gate, up, y, n);
  for (int64_t i = 0; i < n; ++i) y[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

// Plain loops: the compiler vectorises these well enough for memory-bound element-wise work.
void add(const float* a, const float* b, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}
void scale(const float* x, float s, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * s;
}

void fp16_to_f32_row(const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = fp16_to_f32(x[i]);
}
void f32_to_fp16_row(const float* x, uint16_t* y, int64_t n) {
  quantize_activation(DType::kF16, x, y, n);
}
void bf16_to_f32_row(const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_f32(x[i]);
}
void f32_to_bf16_row(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = f32_to_bf16(x[i]);
}

}  // namespace enclave::kernels
