#include "kernels/ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <random>
#include <vector>

#include "core/fp16.h"

namespace enclave::kernels {
namespace {

std::vector<float> randv(int64_t n, std::mt19937& rng, float s = 2.0f) {
  std::normal_distribution<float> d(0.0f, s);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = d(rng);
  return x;
}

std::vector<SimdLevel> levels() {
  std::vector<SimdLevel> l{SimdLevel::kScalar};
  if (best_simd_level() != SimdLevel::kScalar) l.push_back(best_simd_level());
  return l;
}

const std::vector<int64_t> kSizes = {1, 3, 15, 16, 17, 31, 33, 100, 1536, 1537};

TEST(Ops, RmsNorm) {
  std::mt19937 rng(21);
  for (SimdLevel lv : levels()) {
    for (int64_t n : kSizes) {
      const auto x = randv(n, rng), w = randv(n, rng);
      double ss = 0.0;
      for (float v : x) ss += static_cast<double>(v) * v;
      const double s = 1.0 / std::sqrt(ss / n + 1e-6);
      std::vector<float> y(x.size());
      rms_norm(x.data(), w.data(), y.data(), n, 1e-6f, lv);
      for (int64_t i = 0; i < n; ++i)
        EXPECT_NEAR(y[i], x[i] * s * w[i], 1e-5 * std::fabs(x[i] * s * w[i]) + 1e-6);
      std::vector<float> z = x;  // in place, no weight
      rms_norm(z.data(), nullptr, z.data(), n, 1e-6f, lv);
      for (int64_t i = 0; i < n; ++i)
        EXPECT_NEAR(z[i], x[i] * s, 1e-5 * std::fabs(x[i] * s) + 1e-6);
    }
  }
}

TEST(Ops, SoftmaxStableAndNormalised) {
  std::mt19937 rng(22);
  for (SimdLevel lv : levels()) {
    for (int64_t n : kSizes) {
      auto x = randv(n, rng, 5.0f);
      x[0] += 1000.0f;              // would overflow a naive exp
      if (n > 2) x[1] = -INFINITY;  // masked
      std::vector<double> ref(x.size());
      double mx = -INFINITY, sum = 0.0;
      for (float v : x) mx = std::max(mx, static_cast<double>(v));
      for (int64_t i = 0; i < n; ++i) sum += ref[i] = std::exp(x[i] - mx);
      softmax(x.data(), n, lv);
      double total = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        EXPECT_NEAR(x[i], ref[i] / sum, 1e-6 * ref[i] / sum + 1e-12) << i;
        total += x[i];
      }
      EXPECT_NEAR(total, 1.0, 1e-5);
      if (n > 2) {
        EXPECT_EQ(x[1], 0.0f);
      }
    }
  }
}

TEST(Ops, SiluAndSwiglu) {
  std::mt19937 rng(23);
  for (SimdLevel lv : levels()) {
    for (int64_t n : kSizes) {
      auto g = randv(n, rng, 6.0f), u = randv(n, rng);
      if (n > 2) g[0] = 95.0f, g[1] = -95.0f;
      std::vector<float> y(g.size()), z(g.size());
      silu(g.data(), y.data(), n, lv);
      swiglu(g.data(), u.data(), z.data(), n, lv);
      for (int64_t i = 0; i < n; ++i) {
        const double s = g[i] / (1.0 + std::exp(-static_cast<double>(g[i])));
        EXPECT_NEAR(y[i], s, 2e-6 * std::fabs(s) + 1e-30) << g[i];
        EXPECT_NEAR(z[i], s * u[i], 2e-6 * std::fabs(s * u[i]) + 1e-30) << g[i];
      }
    }
  }
}

TEST(Ops, AddScaleConversions) {
  std::mt19937 rng(24);
  const int64_t n = 77;
  const auto a = randv(n, rng), b = randv(n, rng);
  std::vector<float> y(n);
  add(a.data(), b.data(), y.data(), n);
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(y[i], a[i] + b[i]);
  scale(a.data(), 0.25f, y.data(), n);
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(y[i], a[i] * 0.25f);
  std::vector<uint16_t> h(n), bf(n);
  f32_to_fp16_row(a.data(), h.data(), n);
  f32_to_bf16_row(a.data(), bf.data(), n);
  std::vector<float> back(n), back_bf(n);
  fp16_to_f32_row(h.data(), back.data(), n);
  bf16_to_f32_row(bf.data(), back_bf.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(h[i], f32_to_fp16(a[i]));
    EXPECT_EQ(back[i], fp16_to_f32(h[i]));
    EXPECT_EQ(bf[i], f32_to_bf16(a[i]));
    EXPECT_EQ(back_bf[i], bf16_to_f32(bf[i]));
  }
}

// Straightforward RoPE (reference doc 3.1.3-3.1.4) in double.
void rope_ref(std::vector<float>& x, int64_t n_tokens, int64_t n_heads, int64_t hd,
              const std::vector<int32_t>& pos, const RopeParams& p) {
  const int np = p.n_rot / 2;
  auto corr = [&](double r) {
    return p.n_rot * std::log(p.n_ctx_orig / (r * 2 * std::numbers::pi)) /
           (2 * std::log(static_cast<double>(p.freq_base)));
  };
  const double low = std::max(0.0, std::floor(corr(p.beta_fast)));
  const double high = std::min(static_cast<double>(p.n_rot - 1), std::ceil(corr(p.beta_slow)));
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t h = 0; h < n_heads; ++h) {
      float* v = x.data() + (t * n_heads + h) * hd;
      for (int i = 0; i < np; ++i) {
        double extrap = pos[t] * std::pow(static_cast<double>(p.freq_base), -2.0 * i / p.n_rot);
        if (p.freq_factors) extrap /= p.freq_factors[i];
        const double interp = p.freq_scale * extrap;
        double th = interp, ms = p.attn_factor;
        if (p.ext_factor != 0.0f) {
          const double y = (i - low) / std::max(0.001, high - low);
          const double mix = (1.0 - std::clamp(y, 0.0, 1.0)) * p.ext_factor;
          th = interp * (1 - mix) + extrap * mix;
          ms *= 1.0 + 0.1 * std::log(1.0 / p.freq_scale);
        }
        const int a = p.neox ? i : 2 * i, b = p.neox ? i + np : 2 * i + 1;
        const double x0 = v[a], x1 = v[b];
        v[a] = static_cast<float>((x0 * std::cos(th) - x1 * std::sin(th)) * ms);
        v[b] = static_cast<float>((x0 * std::sin(th) + x1 * std::cos(th)) * ms);
      }
    }
  }
}

TEST(Ops, RopeVariants) {
  std::mt19937 rng(25);
  const int64_t n_tokens = 3, n_heads = 2, hd = 64;
  const std::vector<int32_t> pos = {0, 7, 300};
  std::vector<float> ff(16);
  for (size_t i = 0; i < ff.size(); ++i) ff[i] = 1.0f + 0.5f * static_cast<float>(i);
  std::vector<RopeParams> cases;
  RopeParams p;
  p.n_rot = 64;
  cases.push_back(p);  // plain NORM
  p.neox = true;
  cases.push_back(p);  // plain NEOX
  p.n_rot = 32;        // partial rotation: dims 32..63 untouched
  p.freq_factors = ff.data();
  p.freq_base = 500000.0f;
  cases.push_back(p);
  RopeParams y;  // DeepSeek-style YaRN
  y.n_rot = 64;
  y.freq_scale = 1.0f / 40.0f;
  y.ext_factor = 1.0f;
  y.attn_factor = 1.0f / (1.0f + 0.1f * std::log(40.0f));
  y.n_ctx_orig = 4096;
  cases.push_back(y);
  p = RopeParams{};
  p.n_rot = 64;
  p.freq_scale = 0.25f;  // linear
  cases.push_back(p);
  for (size_t c = 0; c < cases.size(); ++c) {
    auto x = randv(n_tokens * n_heads * hd, rng, 1.0f);
    auto ref = x;
    rope(x.data(), n_tokens, n_heads, hd, pos.data(), cases[c]);
    rope_ref(ref, n_tokens, n_heads, hd, pos, cases[c]);
    for (size_t i = 0; i < x.size(); ++i)
      ASSERT_NEAR(x[i], ref[i], 2e-4) << "case " << c << " i " << i;
  }
  // Position 0 is the identity (YaRN's net multiplier is 1 here).
  auto x = randv(hd, rng, 1.0f);
  auto x0 = x;
  const int32_t zero = 0;
  rope(x.data(), 1, 1, hd, &zero, cases[3]);
  for (int64_t i = 0; i < hd; ++i) EXPECT_NEAR(x[i], x0[i], 1e-6);
}

}  // namespace
}  // namespace enclave::kernels
