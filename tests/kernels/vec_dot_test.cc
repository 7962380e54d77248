#include "kernels/vec_dot.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "dot_test_util.h"

namespace enclave::kernels {
namespace {

using testing::Bytes;

std::vector<SimdLevel> simd_levels() {
  std::vector<SimdLevel> levels;
  if (best_simd_level() != SimdLevel::kScalar) levels.push_back(SimdLevel::kAvx2);
  if (best_simd_level() == SimdLevel::kAvx512) levels.push_back(SimdLevel::kAvx512);
  return levels;
}

int64_t block_of(DType t) {
  return dtype_traits(t).block_elems == 1 ? 1 : dtype_traits(t).block_elems;
}

double abs_dot(DType w, const Bytes& wr, DType a, const Bytes& ar, int64_t n) {
  const auto x = testing::dequant(w, wr.data(), n);
  const auto y = testing::dequant(a, ar.data(), n);
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += std::fabs(x[i] * y[i]);
  return s;
}

TEST(ActivationType, FollowsGgmlPairing) {
  EXPECT_EQ(activation_type(DType::kQ4_0), DType::kQ8_0);
  EXPECT_EQ(activation_type(DType::kQ5_0), DType::kQ8_0);
  EXPECT_EQ(activation_type(DType::kQ8_0), DType::kQ8_0);
  EXPECT_EQ(activation_type(DType::kQ4_1), DType::kQ8_1);
  EXPECT_EQ(activation_type(DType::kQ5_1), DType::kQ8_1);
  for (DType t : {DType::kQ2_K, DType::kQ3_K, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    EXPECT_EQ(activation_type(t), DType::kQ8_K);
  }
  EXPECT_EQ(activation_type(DType::kF16), DType::kF16);
  EXPECT_EQ(activation_type(DType::kBF16), DType::kBF16);
  EXPECT_EQ(activation_type(DType::kF32), DType::kF32);
}

// Scalar vec_dot equals a double-precision dot of independently dequantized values.
TEST(VecDot, ScalarMatchesDequantizedDot) {
  std::mt19937 rng(1);
  for (DType t : testing::weight_types()) {
    const DType at = activation_type(t);
    const int64_t blk = std::max<int64_t>(block_of(t), 32);
    for (int64_t nb : {1, 3, 7}) {
      const int64_t n = blk * nb;
      const Bytes w = testing::random_weight_row(t, n, rng, false);
      const Bytes a = testing::random_act_row(at, n, rng, false);
      const auto x = testing::dequant(t, w.data(), n);
      const auto y = testing::dequant(at, a.data(), n);
      double ref = 0.0, mag = 0.0;
      for (int64_t i = 0; i < n; ++i) ref += x[i] * y[i], mag += std::fabs(x[i] * y[i]);
      if (at == DType::kQ8_1) {
        // Q8_1 carries d*sum(q) rounded to f16 and the kernel uses it as stored (as ggml does):
        // move the reference by m * (s_stored - d * sum) per block.
        const auto* ab = reinterpret_cast<const BlockQ8_1*>(a.data());
        const size_t mo = 2;  // m follows d in Q4_1 and Q5_1
        const size_t bb = dtype_traits(t).block_bytes;
        for (int64_t b = 0; b < n / 32; ++b) {
          int sum = 0;
          for (int j = 0; j < 32; ++j) sum += ab[b].qs[j];
          const double m = testing::get_f16(w.data() + b * bb + mo);
          ref += m * (fp16_to_f32(ab[b].s) - static_cast<double>(fp16_to_f32(ab[b].d)) * sum);
        }
      }
      const float got = vec_dot(t, w.data(), a.data(), n, SimdLevel::kScalar);
      EXPECT_NEAR(got, ref, 2e-6 * mag) << dtype_name(t) << " n=" << n;
    }
  }
}

// With unit scales every dot product is an exact integer: SIMD must reproduce it exactly.
TEST(VecDot, SimdIntegerSumsExact) {
  std::mt19937 rng(2);
  for (SimdLevel level : simd_levels()) {
    for (DType t : testing::weight_types()) {
      if (!dtype_traits(t).quantized) continue;
      const DType at = activation_type(t);
      const bool k = block_of(t) == 256;
      for (int64_t nb :
           k ? std::vector<int64_t>{1, 3, 5} : std::vector<int64_t>{1, 3, 5, 7, 9, 17, 49}) {
        const int64_t n = block_of(t) * nb;
        for (int rep = 0; rep < 4; ++rep) {
          const Bytes w = testing::random_weight_row(t, n, rng, true);
          const Bytes a = testing::random_act_row(at, n, rng, true);
          const float ref = vec_dot(t, w.data(), a.data(), n, SimdLevel::kScalar);
          const float got = vec_dot(t, w.data(), a.data(), n, level);
          EXPECT_EQ(got, ref) << dtype_name(t) << " " << simd_level_name(level) << " n=" << n;
          EXPECT_EQ(ref, std::round(ref));
        }
      }
    }
  }
}

// Realistic scales: SIMD within 1e-6 of sum |w*a| of the scalar reference.
TEST(VecDot, SimdMatchesScalarRandom) {
  std::mt19937 rng(3);
  for (SimdLevel level : simd_levels()) {
    for (DType t : testing::weight_types()) {
      const DType at = activation_type(t);
      const bool plain = !dtype_traits(t).quantized;
      std::vector<int64_t> sizes;
      if (plain) {
        sizes = {1, 7, 15, 16, 17, 33, 63, 64, 65, 200, 1031};
      } else if (block_of(t) == 256) {
        sizes = {256, 768, 1280, 3328};
      } else {
        sizes = {32, 96, 160, 224, 1568, 4064};
      }
      for (int64_t n : sizes) {
        const Bytes w = testing::random_weight_row(t, n, rng, false);
        const Bytes a = testing::random_act_row(at, n, rng, false);
        const float ref = vec_dot(t, w.data(), a.data(), n, SimdLevel::kScalar);
        const float got = vec_dot(t, w.data(), a.data(), n, level);
        const double mag = abs_dot(t, w, at, a, n);
        EXPECT_NEAR(got, ref, 1e-6 * mag)
            << dtype_name(t) << " " << simd_level_name(level) << " n=" << n;
      }
    }
  }
}

TEST(VecDot, FunctionPointerMatchesCall) {
  std::mt19937 rng(4);
  const int64_t n = 512;
  for (DType t : testing::weight_types()) {
    const Bytes w = testing::random_weight_row(t, n, rng, false);
    const Bytes a = testing::random_act_row(activation_type(t), n, rng, false);
    VecDotFn f = vec_dot_fn(t, best_simd_level());
    ASSERT_NE(f, nullptr) << dtype_name(t);
    EXPECT_EQ(f(w.data(), a.data(), n), vec_dot(t, w.data(), a.data(), n)) << dtype_name(t);
  }
}

// ---- activation quantizers
// -----------------------------------------------------------------------

std::vector<float> random_floats(int64_t n, std::mt19937& rng, float scale) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = d(rng);
  return x;
}

TEST(QuantizeActivation, Q8_0Reference) {
  // amax 127 -> d = 1, q = roundf(x): halves round away from zero.
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j) - 15.5f;
  x[31] = 127.0f;
  BlockQ8_0 b;
  quantize_activation(DType::kQ8_0, x.data(), &b, 32, SimdLevel::kScalar);
  EXPECT_EQ(fp16_to_f32(b.d), 1.0f);
  EXPECT_EQ(b.qs[0], -16);  // -15.5
  EXPECT_EQ(b.qs[15], -1);  // -0.5
  EXPECT_EQ(b.qs[16], 1);   // 0.5
  EXPECT_EQ(b.qs[17], 2);   // 1.5
  EXPECT_EQ(b.qs[31], 127);
  // An all-zero block has d = 0 and zero quants.
  std::vector<float> z(32, 0.0f);
  quantize_activation(DType::kQ8_0, z.data(), &b, 32, SimdLevel::kScalar);
  EXPECT_EQ(b.d, 0);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(b.qs[j], 0);
}

TEST(QuantizeActivation, Q8_KReference) {
  // max with the largest magnitude is -127 -> iscale = 1, d = 1; halves round to even.
  std::vector<float> x(256, 0.0f);
  x[0] = 2.5f;
  x[1] = 3.5f;
  x[2] = -0.5f;
  x[3] = -127.0f;
  x[4] = 127.0f;  // same magnitude, later: the first one keeps its sign
  BlockQ8_K b;
  quantize_activation(DType::kQ8_K, x.data(), &b, 256, SimdLevel::kScalar);
  EXPECT_EQ(b.d, 1.0f);
  EXPECT_EQ(b.qs[0], 2);
  EXPECT_EQ(b.qs[1], 4);
  EXPECT_EQ(b.qs[2], 0);
  EXPECT_EQ(b.qs[3], -127);
  EXPECT_EQ(b.qs[4], 127);
  EXPECT_EQ(b.bsums[0], 2 + 4 + 0 - 127 + 127);
  EXPECT_EQ(b.bsums[1], 0);
}

TEST(QuantizeActivation, Q8_1SumField) {
  std::mt19937 rng(5);
  auto x = random_floats(64, rng, 1.0f);
  BlockQ8_1 b[2];
  quantize_activation(DType::kQ8_1, x.data(), b, 64, SimdLevel::kScalar);
  for (int i = 0; i < 2; ++i) {
    int sum = 0;
    for (int j = 0; j < 32; ++j) sum += b[i].qs[j];
    EXPECT_EQ(b[i].s, f32_to_fp16(fp16_to_f32(b[i].d) == 0 ? 0.0f : sum * (fp16_to_f32(b[i].d))))
        << i;
  }
}

// SIMD quantizers are byte-identical to the scalar reference, including ties and zero blocks.
TEST(QuantizeActivation, SimdBytesEqualScalar) {
  std::mt19937 rng(6);
  for (SimdLevel level : simd_levels()) {
    for (DType at :
         {DType::kQ8_0, DType::kQ8_1, DType::kQ8_K, DType::kF16, DType::kBF16, DType::kF32}) {
      const int64_t blk = at == DType::kQ8_K ? 256 : 32;
      for (int64_t nb : {1, 3, 7, 13}) {
        const int64_t n = blk * nb;
        for (int variant = 0; variant < 4; ++variant) {
          std::vector<float> x = random_floats(n, rng, variant == 1 ? 1e-3f : 3.0f);
          if (variant == 2) {
            // Exact ties: amax 127 makes d = 1 (and iscale = +-1) so x*id lands on k + 0.5.
            for (int64_t i = 0; i < n; ++i) x[i] = std::floor(x[i] * 10.0f) + 0.5f;
            for (int64_t b = 0; b < nb; ++b) x[b * blk] = (b % 2) ? 127.0f : -127.0f;
          }
          if (variant == 3) {
            x[5] = -x[9];  // equal magnitudes, opposite signs: the first one wins
            if (nb > 1) std::fill(x.begin() + blk, x.begin() + 2 * blk, 0.0f);  // a zero block
          }
          const size_t bytes = dtype_row_bytes(at, static_cast<uint64_t>(n));
          Bytes ref(bytes), got(bytes);
          quantize_activation(at, x.data(), ref.data(), n, SimdLevel::kScalar);
          quantize_activation(at, x.data(), got.data(), n, level);
          EXPECT_EQ(0, std::memcmp(ref.data(), got.data(), bytes))
              << dtype_name(at) << " " << simd_level_name(level) << " n=" << n << " variant "
              << variant;
        }
      }
    }
  }
}

TEST(QuantizeActivation, RoundTripError) {
  std::mt19937 rng(7);
  const int64_t n = 1024;
  auto x = random_floats(n, rng, 2.0f);
  for (DType at : {DType::kQ8_0, DType::kQ8_1, DType::kQ8_K}) {
    Bytes q(dtype_row_bytes(at, n));
    quantize_activation(at, x.data(), q.data(), n);
    const auto y = testing::dequant(at, q.data(), n);
    const int64_t blk = at == DType::kQ8_K ? 256 : 32;
    for (int64_t b = 0; b < n / blk; ++b) {
      float amax = 0.0f;
      for (int64_t j = 0; j < blk; ++j) amax = std::max(amax, std::fabs(x[b * blk + j]));
      for (int64_t j = 0; j < blk; ++j) {
        // Half a quantization step, plus the f16 rounding of the scale.
        EXPECT_NEAR(y[b * blk + j], x[b * blk + j], amax / 127.0 * 0.5 + amax * 1e-3)
            << dtype_name(at);
      }
    }
  }
}

TEST(SimdLevel, NamesAndClamp) {
  EXPECT_STREQ(simd_level_name(SimdLevel::kScalar), "scalar");
  EXPECT_STREQ(simd_level_name(SimdLevel::kAvx2), "avx2");
  EXPECT_STREQ(simd_level_name(SimdLevel::kAvx512), "avx512");
  // Asking for more than the CPU has must still work (clamped, not faulting).
  std::mt19937 rng(8);
  const Bytes w = testing::random_weight_row(DType::kQ4_0, 64, rng, true);
  const Bytes a = testing::random_act_row(DType::kQ8_0, 64, rng, true);
  EXPECT_EQ(vec_dot(DType::kQ4_0, w.data(), a.data(), 64, SimdLevel::kAvx512),
            vec_dot(DType::kQ4_0, w.data(), a.data(), 64, SimdLevel::kScalar));
}

}  // namespace
}  // namespace enclave::kernels
