// Quantization: byte-exact with ggml's reference encoders where the fixtures allow it, RMSE
// within 5 % of ggml's for every type, exact zeros for zero rows, and the activation types'
// invariants (Q8_1 sum, Q8_K bsums).
#include "kernels/quantize.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/fp16.h"
#include "gguf/gguf_file.h"
#include "kernels/quant_blocks.h"
#include "kernels/quantize_internal.h"
#include "quant_test_util.h"

namespace enclave::kernels {
namespace {

using testing::fixture_types;
using testing::quant_fixture;

const gguf::GgufFile& source_file() {
  static gguf::GgufFile* file = [] {
    auto f = gguf::GgufFile::open(quant_fixture("src-f32.gguf"));
    if (!f) {
      ADD_FAILURE() << f.error().message;
      return static_cast<gguf::GgufFile*>(nullptr);
    }
    return new gguf::GgufFile(std::move(f).value());
  }();
  if (file == nullptr) throw std::runtime_error("src-f32.gguf did not open");
  return *file;
}

std::vector<float> source_tensor(const gguf::TensorInfo& t) {
  return testing::tensor_to_f32(t);
}

// Bytes identical to ggml's output for the given fixture type; returns the number of tensors that
// differ (and reports the first differing byte of each).
size_t count_byte_mismatches(const std::string& type_name) {
  auto ref = gguf::GgufFile::open(quant_fixture(type_name + ".gguf"));
  EXPECT_TRUE(ref.has_value()) << ref.error().message;
  if (!ref) return 99;
  const DType type = *dtype_from_name(type_name);
  size_t bad = 0;
  for (const auto& src : source_file().tensors()) {
    const gguf::TensorInfo* want = ref->tensor(src.name);
    EXPECT_NE(want, nullptr) << src.name;
    if (want == nullptr) return 99;
    const std::vector<float> x = source_tensor(src);
    const auto got = testing::quantize_tensor(type, x.data(), static_cast<int64_t>(src.ne[0]),
                                              static_cast<int64_t>(src.n_rows()));
    EXPECT_EQ(got.size(), want->size_bytes) << src.name;
    if (got.size() != want->size_bytes) return 99;
    if (std::memcmp(got.data(), want->data, got.size()) != 0) {
      size_t i = 0;
      while (got[i] == want->data[i]) ++i;
      const size_t row_bytes = dtype_row_bytes(type, src.ne[0]);
      std::printf("  %s %s: first differing byte %zu (row %zu)\n", type_name.c_str(),
                  src.name.c_str(), i, i / row_bytes);
      ++bad;
    }
  }
  return bad;
}

class QuantizeBytes : public ::testing::TestWithParam<std::string> {};

// The round-to-nearest encoders (and the float conversions) are fully specified by ggml's
// reference code; the K-quant scale search is too, and we follow it operation for operation.
TEST_P(QuantizeBytes, IdenticalToGgml) {
  EXPECT_EQ(count_byte_mismatches(GetParam()), 0u);
}

INSTANTIATE_TEST_SUITE_P(AllFixtureTypes, QuantizeBytes, ::testing::ValuesIn(fixture_types()),
                         testing::type_param_name);

class QuantizeRmse : public ::testing::TestWithParam<std::string> {};

TEST_P(QuantizeRmse, WithinFivePercentOfGgml) {
  const std::string type_name = GetParam();
  const DType type = *dtype_from_name(type_name);
  for (const auto& src : source_file().tensors()) {
    SCOPED_TRACE(src.name);
    const auto ne0 = static_cast<int64_t>(src.ne[0]);
    const auto n_rows = static_cast<int64_t>(src.n_rows());
    const std::vector<float> x = source_tensor(src);
    const auto q = testing::quantize_tensor(type, x.data(), ne0, n_rows);
    const std::vector<float> y = testing::dequantize_tensor(type, q, ne0, n_rows);
    const double got = testing::rmse(x.data(), y.data(), x.size());
    const double want = testing::reference_rmse(type_name, src.name);
    EXPECT_LE(got, want * 1.05) << "reference " << want;
    EXPECT_GT(got, 0.0);  // a lossy type that reproduces random data exactly is a broken test
    if (src.name == "edge_256") {
      for (int64_t r = 0; r < n_rows; ++r) {
        const double row = testing::rmse(x.data() + r * ne0, y.data() + r * ne0, ne0);
        const double row_want = testing::reference_edge_row_rmse(type_name, static_cast<size_t>(r));
        EXPECT_LE(row, row_want * 1.05 + 1e-12) << "edge row " << r;
      }
      // Row 4 is all zeros and must come back as exact zeros.
      for (int64_t i = 0; i < ne0; ++i) ASSERT_EQ(y[4 * ne0 + i], 0.0f) << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllFixtureTypes, QuantizeRmse, ::testing::ValuesIn(fixture_types()),
                         testing::type_param_name);

const DType kAllTypes[] = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ4_0, DType::kQ4_1,
                           DType::kQ5_0, DType::kQ5_1, DType::kQ8_0, DType::kQ8_1, DType::kQ2_K,
                           DType::kQ3_K, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K, DType::kQ8_K};

TEST(Quantize, ZeroRowsComeBackAsExactZeros) {
  const int64_t n = 512;
  const std::vector<float> zeros(n, 0.0f);
  for (DType t : kAllTypes) {
    std::vector<uint8_t> q(dtype_row_bytes(t, n), 0xAB);  // garbage first: every byte is written
    EXPECT_EQ(quantize_row(t, zeros.data(), q.data(), n), q.size()) << dtype_name(t);
    std::vector<float> y(n, 1.0f);
    dequantize_row(t, q.data(), y.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(y[i], 0.0f) << dtype_name(t) << " element " << i;
  }
}

TEST(Quantize, RoundTripErrorIsBoundedForEveryType) {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const int64_t n = 1024;
  std::vector<float> x(n);
  for (float& v : x) v = dist(rng);
  for (DType t : kAllTypes) {
    std::vector<uint8_t> q(dtype_row_bytes(t, n));
    quantize_row(t, x.data(), q.data(), n);
    std::vector<float> y(n);
    dequantize_row(t, q.data(), y.data(), n);
    const double err = testing::rmse(x.data(), y.data(), n);
    // Worst case is Q2_K at ~0.3 for N(0, 1) data (rmse.json); Q8 types are ~100x better.
    EXPECT_LT(err, 0.35) << dtype_name(t);
    if (t == DType::kF32) {
      EXPECT_EQ(err, 0.0);
    }
    if (t == DType::kQ8_1 || t == DType::kQ8_K || t == DType::kQ8_0) {
      EXPECT_LT(err, 0.01) << dtype_name(t);
    }
  }
}

TEST(Quantize, Q8_1StoresScaledSum) {
  std::vector<float> x(64);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(static_cast<float>(i)) * 3.0f;
  BlockQ8_1 b[2];
  quantize_row(DType::kQ8_1, x.data(), b, 64);
  for (const auto& blk : b) {
    int sum = 0;
    for (int8_t q : blk.qs) sum += q;
    const float d = fp16_to_f32(blk.d);
    EXPECT_EQ(blk.s, f32_to_fp16(static_cast<float>(sum) * d));
    int max_q = 0;
    for (int8_t q : blk.qs) max_q = std::max(max_q, std::abs(static_cast<int>(q)));
    EXPECT_EQ(max_q, 127);  // the largest magnitude maps to +-127
  }
}

TEST(Quantize, Q8_KBsumsAndScale) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> dist(-5.0f, 5.0f);
  std::vector<float> x(2 * kQK_K);
  for (float& v : x) v = dist(rng);
  x[300] = -9.0f;  // largest magnitude of block 1 is negative
  BlockQ8_K b[2];
  quantize_row(DType::kQ8_K, x.data(), b, 2 * kQK_K);
  for (int blk = 0; blk < 2; ++blk) {
    for (int g = 0; g < kQK_K / 16; ++g) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += b[blk].qs[16 * g + i];
      EXPECT_EQ(b[blk].bsums[g], sum);
    }
    for (int i = 0; i < kQK_K; ++i) {
      const float v = x[blk * kQK_K + i];
      EXPECT_NEAR(b[blk].d * b[blk].qs[i], v, std::fabs(b[blk].d) * 0.5f + 1e-6f);
    }
  }
  // ggml maps the signed extreme to -127 and gives d the opposite sign of that extreme.
  EXPECT_EQ(b[1].qs[300 - kQK_K], -127);
  EXPECT_GT(b[1].d, 0.0f);
}

TEST(Quantize, MultiRowCallEqualsRowByRow) {
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 2.0f);
  std::vector<float> x(4 * 512);
  for (float& v : x) v = dist(rng);
  for (DType t : kAllTypes) {
    const size_t row = dtype_row_bytes(t, 512);
    std::vector<uint8_t> whole(4 * row), rows(4 * row);
    quantize_row(t, x.data(), whole.data(), 4 * 512);
    for (int r = 0; r < 4; ++r) quantize_row(t, x.data() + r * 512, rows.data() + r * row, 512);
    EXPECT_EQ(whole, rows) << dtype_name(t);
  }
}

TEST(QuantizeHelpers, NearestIntRoundsHalfToEven) {
  using quant_detail::nearest_int;
  EXPECT_EQ(nearest_int(0.5f), 0);
  EXPECT_EQ(nearest_int(1.5f), 2);
  EXPECT_EQ(nearest_int(2.5f), 2);
  EXPECT_EQ(nearest_int(-0.5f), 0);
  EXPECT_EQ(nearest_int(-1.5f), -2);
  EXPECT_EQ(nearest_int(-2.4999f), -2);
  EXPECT_EQ(nearest_int(126.7f), 127);
  EXPECT_EQ(nearest_int(-4194303.0f), -4194303);
}

TEST(QuantizeHelpers, RoundHalfAwayMatchesRoundf) {
  using quant_detail::round_half_away;
  for (float v : {0.5f, 1.5f, 2.5f, -0.5f, -2.5f, 0.49999997f, -0.49999997f, 126.5f, -127.5f, 3.0f,
                  -0.0f, 8388607.0f}) {
    EXPECT_EQ(round_half_away(v), static_cast<int>(std::round(v))) << v;
  }
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> dist(-200.0f, 200.0f);
  for (int i = 0; i < 100000; ++i) {
    const float v = dist(rng);
    ASSERT_EQ(round_half_away(v), static_cast<int>(std::round(v))) << v;
  }
}

}  // namespace
}  // namespace enclave::kernels

namespace enclave::kernels {
namespace {

// 8 groups of n values with the awkward cases mixed in: constant, all zero, all positive,
// one outlier, tiny, huge.
std::vector<float> awkward_groups(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(8 * n));
  for (float& v : x) v = dist(rng);
  for (int i = 0; i < n; ++i) {
    x[1 * n + i] = 0.75f;                     // constant (flat)
    x[2 * n + i] = 0.0f;                      // zero
    x[3 * n + i] = std::fabs(x[3 * n + i]);   // min > 0
    x[5 * n + i] *= 1e-6f;                    // tiny
    x[6 * n + i] *= 500.0f;                   // huge
    x[7 * n + i] = -std::fabs(x[7 * n + i]);  // all <= 0
  }
  x[4 * n + 3] = 40.0f;  // outlier
  return x;
}

TEST(QuantizeFit, ScaleMinLanesMatchScalar) {
  for (int n : {16, 32}) {
    for (uint32_t seed = 0; seed < 20; ++seed) {
      const std::vector<float> x = awkward_groups(n, seed);
      std::vector<float> w(x.size());
      for (size_t i = 0; i < x.size(); ++i) w[i] = std::fabs(x[i]) + (seed % 2 ? 0.1f : 0.0f);
      for (bool abs_error : {false, true}) {
        const int nmax = abs_error ? 3 : 15;
        std::vector<uint8_t> lv(x.size()), ls(x.size());
        float scales[8], neg_mins[8];
        quant_detail::fit_scale_min_x8(n, nmax, x.data(), w.data(), lv.data(), scales, neg_mins,
                                       -1.0f, 0.1f, 20, abs_error);
        for (int g = 0; g < 8; ++g) {
          float neg_min;
          const float scale =
              quant_detail::fit_scale_min(n, nmax, x.data() + g * n, w.data() + g * n,
                                          ls.data() + g * n, &neg_min, -1.0f, 0.1f, 20, abs_error);
          ASSERT_EQ(f32_bits(scales[g]), f32_bits(scale))
              << "n " << n << " seed " << seed << " g " << g;
          ASSERT_EQ(f32_bits(neg_mins[g]), f32_bits(neg_min)) << "seed " << seed << " g " << g;
        }
        ASSERT_EQ(lv, ls) << "seed " << seed;
      }
    }
  }
}

TEST(QuantizeFit, SymmetricLanesMatchScalar) {
  for (uint32_t seed = 0; seed < 40; ++seed) {
    const std::vector<float> x = awkward_groups(16, seed);
    std::vector<int8_t> lv(x.size()), ls(x.size());
    float scales[8];
    quant_detail::fit_symmetric_x8(16, 32, x.data(), lv.data(), scales);
    for (int g = 0; g < 8; ++g) {
      const float scale =
          quant_detail::fit_symmetric(16, 32, x.data() + g * 16, ls.data() + g * 16);
      ASSERT_EQ(f32_bits(scales[g]), f32_bits(scale)) << "seed " << seed << " g " << g;
    }
    ASSERT_EQ(lv, ls) << "seed " << seed;
  }
}

}  // namespace
}  // namespace enclave::kernels
