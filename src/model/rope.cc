// RoPE tables and rotations (ggml rope_yarn semantics).
#include "model/rope.h"

#include <algorithm>
#include <cmath>

namespace enclave::model::detail {

namespace {
// Dimension index at which the rotation count over the original context equals n_rot_turns.
float yarn_corr_dim(int32_t n_rot, int32_t n_ctx_orig, float n_turns, float base) {
  return static_cast<float>(n_rot * std::log(n_ctx_orig / (n_turns * 2.0 * M_PI)) /
                            (2.0 * std::log(static_cast<double>(base))));
}
}  // namespace

Rope::Rope(const ModelConfig& c, const std::vector<float>& freq_factors)
    : n_rot_(c.n_rot),
      head_dim_(c.head_dim),
      type_(c.rope_type),
      freq_scale_(c.rope_freq_scale),
      ext_factor_(c.yarn_ext_factor),
      mscale_(c.yarn_attn_factor) {
  inv_freq_.resize(static_cast<size_t>(n_rot_ / 2));
  for (int32_t i = 0; i < n_rot_ / 2; ++i) {
    double f = std::pow(static_cast<double>(c.rope_base), -2.0 * i / n_rot_);
    if (!freq_factors.empty()) f /= freq_factors[static_cast<size_t>(i)];
    inv_freq_[static_cast<size_t>(i)] = f;
  }
  if (ext_factor_ != 0.0f) {
    const int32_t orig = c.yarn_n_ctx_orig > 0 ? c.yarn_n_ctx_orig : c.n_ctx_train;
    corr_low_ =
        std::max(0.0f, std::floor(yarn_corr_dim(n_rot_, orig, c.yarn_beta_fast, c.rope_base)));
    corr_high_ = std::min(static_cast<float>(n_rot_ - 1),
                          std::ceil(yarn_corr_dim(n_rot_, orig, c.yarn_beta_slow, c.rope_base)));
    mscale_ *= 1.0f + 0.1f * std::log(1.0f / freq_scale_);
  }
}

void Rope::angles(int32_t pos, float* cos_out, float* sin_out) const {
  for (int32_t i = 0; i < n_rot_ / 2; ++i) {
    const double extrap = static_cast<double>(pos) * inv_freq_[static_cast<size_t>(i)];
    double theta = extrap * freq_scale_;
    if (ext_factor_ != 0.0f) {
      const float y =
          (static_cast<float>(i) - corr_low_) / std::max(0.001f, corr_high_ - corr_low_);
      const float ramp = 1.0f - std::min(1.0f, std::max(0.0f, y));
      const double mix = static_cast<double>(ramp) * ext_factor_;
      theta = theta * (1.0 - mix) + extrap * mix;
    }
    cos_out[i] = static_cast<float>(std::cos(theta)) * mscale_;
    sin_out[i] = static_cast<float>(std::sin(theta)) * mscale_;
  }
}

void Rope::apply(float* x, int32_t n_heads, const float* cos_t, const float* sin_t) const {
  const int32_t half = n_rot_ / 2;
  for (int32_t h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<size_t>(h) * head_dim_;
    if (type_ == RopeType::kNorm) {
      for (int32_t i = 0; i < half; ++i) {
        const float x0 = v[2 * i], x1 = v[2 * i + 1];
        v[2 * i] = x0 * cos_t[i] - x1 * sin_t[i];
        v[2 * i + 1] = x0 * sin_t[i] + x1 * cos_t[i];
      }
    } else {
      for (int32_t i = 0; i < half; ++i) {
        const float x0 = v[i], x1 = v[i + half];
        v[i] = x0 * cos_t[i] - x1 * sin_t[i];
        v[i + half] = x0 * sin_t[i] + x1 * cos_t[i];
      }
    }
  }
}

}  // namespace enclave::model::detail
