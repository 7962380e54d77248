#include "kernels/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "dot_test_util.h"
#include "kernels/vec_dot.h"

namespace enclave::kernels {
namespace {

struct Matrix {
  testing::Bytes data;
  WeightMatrix w;
};

Matrix random_matrix(DType t, int64_t rows, int64_t cols, std::mt19937& rng) {
  Matrix m;
  const size_t rb = dtype_row_bytes(t, static_cast<uint64_t>(cols));
  m.data.resize(rb * static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const auto row = testing::random_weight_row(t, cols, rng, false);
    std::copy(row.begin(), row.end(), m.data.begin() + r * rb);
  }
  m.w = WeightMatrix{t, m.data.data(), cols, rows, rb};
  return m;
}

// Uniform activations: per-block absmax 8-bit quantization then costs ~0.4% RMS
// (step/sqrt(12) against a uniform's sd), well inside the 1% bound.
std::vector<float> random_x(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = d(rng);
  return x;
}

double rel_err(const std::vector<float>& y, const std::vector<float>& ref) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < y.size(); ++i) {
    num += (static_cast<double>(y[i]) - ref[i]) * (static_cast<double>(y[i]) - ref[i]);
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return std::sqrt(num / den);
}

TEST(Matmul, MatchesReferenceAllTypes) {
  std::mt19937 rng(11);
  ThreadPool pool(2);
  for (DType t : testing::weight_types()) {
    const int64_t cols = dtype_traits(t).block_elems == 256 ? 512 : 96;
    const int64_t rows = 37;
    const Matrix m = random_matrix(t, rows, cols, rng);
    for (int64_t n_tokens : {1, 3, 17}) {
      const auto x = random_x(n_tokens * cols, rng);
      std::vector<float> y(static_cast<size_t>(n_tokens * rows)), ref(y.size());
      matmul(m.w, x.data(), n_tokens, y.data(), pool);
      matmul_reference(m.w, x.data(), n_tokens, ref.data());
      // 8-bit activations cost ~0.5% of the norm; f16/bf16 less; f32 nothing.
      const double tol = t == DType::kF32 ? 1e-5 : 1e-2;
      EXPECT_LE(rel_err(y, ref), tol) << dtype_name(t) << " n_tokens=" << n_tokens;
    }
  }
}

// Every output is the scalar-free kernel result for its (row, token) whatever the threading,
// tile or token count: 1, 2 and 3 threads and the matrix-vector path give the same bits.
TEST(Matmul, ThreadCountAndBatchDoNotChangeBits) {
  std::mt19937 rng(12);
  ThreadPool p1(1), p2(2), p3(3);
  for (DType t :
       {DType::kQ4_0, DType::kQ8_0, DType::kQ4_K, DType::kQ6_K, DType::kQ5_0, DType::kF16}) {
    const int64_t cols = dtype_traits(t).block_elems == 256 ? 768 : 160;
    const int64_t rows = 203;
    const Matrix m = random_matrix(t, rows, cols, rng);
    for (int64_t n_tokens : {1, 3, 64}) {
      const auto x = random_x(n_tokens * cols, rng);
      std::vector<float> y1(static_cast<size_t>(n_tokens * rows)), y2(y1.size()), y3(y1.size());
      std::vector<uint8_t> scratch(matmul_scratch_bytes(m.w, n_tokens));
      matmul(m.w, x.data(), n_tokens, y1.data(), p1, scratch.data());
      matmul(m.w, x.data(), n_tokens, y2.data(), p2);
      matmul(m.w, x.data(), n_tokens, y3.data(), p3, scratch.data());
      EXPECT_EQ(y1, y2) << dtype_name(t) << " n_tokens=" << n_tokens;
      EXPECT_EQ(y1, y3) << dtype_name(t) << " n_tokens=" << n_tokens;
      // Token t of the batch equals a matrix-vector product of that token alone.
      for (int64_t tok : {int64_t{0}, n_tokens - 1}) {
        std::vector<float> yv(static_cast<size_t>(rows));
        matmul(m.w, x.data() + tok * cols, 1, yv.data(), p2);
        for (int64_t r = 0; r < rows; ++r) {
          ASSERT_EQ(yv[r], y1[tok * rows + r]) << dtype_name(t) << " token " << tok << " row " << r;
        }
      }
    }
  }
}

TEST(Matmul, LargerShapeMatchesVecDot) {
  std::mt19937 rng(13);
  ThreadPool pool(2);
  const DType t = DType::kQ4_0;
  const int64_t cols = 1536, rows = 64, n_tokens = 5;
  const Matrix m = random_matrix(t, rows, cols, rng);
  const auto x = random_x(n_tokens * cols, rng);
  std::vector<float> y(static_cast<size_t>(n_tokens * rows)), ref(y.size());
  matmul(m.w, x.data(), n_tokens, y.data(), pool);
  matmul_reference(m.w, x.data(), n_tokens, ref.data());
  EXPECT_LE(rel_err(y, ref), 1e-2);
  std::vector<uint8_t> a(dtype_row_bytes(DType::kQ8_0, cols));
  quantize_activation(DType::kQ8_0, x.data() + 2 * cols, a.data(), cols);
  for (int64_t r = 0; r < rows; ++r) {
    EXPECT_EQ(y[2 * rows + r], vec_dot(t, m.data.data() + r * m.w.row_bytes, a.data(), cols));
  }
}

TEST(Matmul, ScratchSize) {
  WeightMatrix w{DType::kQ4_K, nullptr, 512, 10, dtype_row_bytes(DType::kQ4_K, 512)};
  EXPECT_GE(matmul_scratch_bytes(w, 3), 3 * dtype_row_bytes(DType::kQ8_K, 512));
  w.type = DType::kF32;
  EXPECT_EQ(matmul_scratch_bytes(w, 3), 0u);
}

}  // namespace
}  // namespace enclave::kernels
