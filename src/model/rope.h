// Rotary position embedding: per-position cos/sin tables (with linear, YaRN and llama3 frequency
// scaling as ggml defines them) and the NORM / NEOX rotations.
#pragma once

#include <cstdint>
#include <vector>

#include "model/model.h"

namespace enclave::model::detail {

class Rope {
 public:
  Rope(const ModelConfig& c, const std::vector<float>& freq_factors);

  int32_t n_pairs() const { return n_rot_ / 2; }
  // cos_out/sin_out: [n_rot/2] for absolute position `pos`.
  void angles(int32_t pos, float* cos_out, float* sin_out) const;
  // Rotates n_heads head vectors of head_dim elements in place (first n_rot dims).
  void apply(float* x, int32_t n_heads, const float* cos_t, const float* sin_t) const;

 private:
  int32_t n_rot_ = 0;
  int32_t head_dim_ = 0;
  RopeType type_ = RopeType::kNorm;
  std::vector<double> inv_freq_;  // [n_rot/2] base^(-2i/n_rot) / factor_i
  float freq_scale_ = 1.0f;
  float ext_factor_ = 0.0f;
  float mscale_ = 1.0f;
  float corr_low_ = 0.0f, corr_high_ = 0.0f;
};

}  // namespace enclave::model::detail
