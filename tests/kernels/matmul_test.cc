#include "kernels/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "dot_test_util.h"
#include "kernels/matmul_amx.h"
#include "kernels/vec_dot.h"
#include "kernels/vec_dot_impl.h"

namespace enclave::kernels {
namespace {

using testing::Matrix;
using testing::random_matrix;
using testing::random_x;
using testing::rel_err;

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
      // Token t of the batch equals a matrix-vector product of that token alone, except on the
      // AMX prompt path, which rounds differently (tests/kernels/matmul_amx_test.cc).
      if (detail::amx_applies(t, n_tokens)) continue;
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

// The AVX-512 row-block x token-block kernels (Q4_0, Q8_0, Q4_K, Q6_K): every tile shape (1..4
// rows x 1..4 tokens, via row counts and token counts that leave remainders), partial 128-element
// quads at the row end, against vec_dot of the same level bit for bit and against the scalar
// reference within the 8-bit activation error.
TEST(Matmul, BlockKernelsMatchVecDotExactly) {
  std::mt19937 rng(14);
  ThreadPool pool(2);
  for (DType t : {DType::kQ4_0, DType::kQ8_0, DType::kQ4_K, DType::kQ6_K}) {
    const bool k = dtype_traits(t).block_elems == 256;
    for (int64_t cols :
         k ? std::vector<int64_t>{256, 768, 1536} : std::vector<int64_t>{32, 96, 160, 1536, 1568}) {
      for (int64_t rows : {1, 6, 23}) {
        const Matrix m = random_matrix(t, rows, cols, rng);
        for (int64_t n_tokens : {1, 2, 7, 9}) {
          const auto x = random_x(n_tokens * cols, rng);
          std::vector<float> y(static_cast<size_t>(n_tokens * rows)), ref(y.size());
          matmul(m.w, x.data(), n_tokens, y.data(), pool);
          matmul_reference(m.w, x.data(), n_tokens, ref.data());
          // Per output: 8-bit activations cost well under 2% of sum |w * x|.
          for (int64_t r = 0; r < rows; ++r) {
            const auto wr = testing::dequant(t, m.data.data() + r * m.w.row_bytes, cols);
            for (int64_t tok = 0; tok < n_tokens; ++tok) {
              double mag = 0.0;
              for (int64_t c = 0; c < cols; ++c) mag += std::fabs(wr[c] * x[tok * cols + c]);
              EXPECT_NEAR(y[tok * rows + r], ref[tok * rows + r], 2e-2 * mag)
                  << dtype_name(t) << " cols=" << cols << " rows=" << rows;
            }
          }
          const DType at = activation_type(t);
          std::vector<uint8_t> a(dtype_row_bytes(at, static_cast<uint64_t>(cols)));
          for (int64_t tok = 0; tok < n_tokens; ++tok) {
            quantize_activation(at, x.data() + tok * cols, a.data(), cols);
            for (int64_t r = 0; r < rows; ++r) {
              ASSERT_EQ(y[tok * rows + r],
                        vec_dot(t, m.data.data() + r * m.w.row_bytes, a.data(), cols))
                  << dtype_name(t) << " cols=" << cols << " rows=" << rows
                  << " n_tokens=" << n_tokens << " token " << tok << " row " << r;
            }
          }
        }
      }
    }
  }
}

// Integer-valued weights and activations: every level's matmul equals the scalar dot exactly.
TEST(Matmul, BlockKernelsExactOnIntegerData) {
  std::mt19937 rng(15);
  ThreadPool pool(2);
  for (DType t : {DType::kQ4_0, DType::kQ8_0, DType::kQ4_K, DType::kQ6_K}) {
    const int64_t cols = dtype_traits(t).block_elems == 256 ? 768 : 352;
    const int64_t rows = 11, n_tokens = 6;
    const DType at = activation_type(t);
    const size_t wb = dtype_row_bytes(t, static_cast<uint64_t>(cols));
    const size_t ab = dtype_row_bytes(at, static_cast<uint64_t>(cols));
    testing::Bytes w(wb * rows);
    for (int64_t r = 0; r < rows; ++r) {
      const auto row = testing::random_weight_row(t, cols, rng, true);
      std::copy(row.begin(), row.end(), w.begin() + r * wb);
    }
    // Activations that quantize exactly: small integers (scale 1 after quantization is not
    // guaranteed, so compare against the scalar dot of the same quantized bytes).
    std::uniform_int_distribution<int> d(-9, 9);
    std::vector<float> x(static_cast<size_t>(n_tokens * cols));
    for (auto& v : x) v = static_cast<float>(d(rng));
    std::vector<float> y(static_cast<size_t>(n_tokens * rows));
    matmul(WeightMatrix{t, w.data(), cols, rows, wb}, x.data(), n_tokens, y.data(), pool);
    std::vector<uint8_t> a(ab);
    for (int64_t tok = 0; tok < n_tokens; ++tok) {
      quantize_activation(at, x.data() + tok * cols, a.data(), cols, SimdLevel::kScalar);
      for (int64_t r = 0; r < rows; ++r) {
        const float ref = vec_dot(t, w.data() + r * wb, a.data(), cols, SimdLevel::kScalar);
        EXPECT_NEAR(y[tok * rows + r], ref, 1e-5 * std::max(1.0f, std::fabs(ref)))
            << dtype_name(t) << " token " << tok << " row " << r;
      }
    }
  }
}

TEST(Matmul, ScratchSize) {
  WeightMatrix w{DType::kQ4_K, nullptr, 512, 10, dtype_row_bytes(DType::kQ4_K, 512)};
  EXPECT_GE(matmul_scratch_bytes(w, 3), 3 * dtype_row_bytes(DType::kQ8_K, 512));
  w.type = DType::kF32;
  EXPECT_EQ(matmul_scratch_bytes(w, 3), 0u);
}

// matmul_many (one quantization, one pass over the rows of several matrices) gives each output
// the bits of its own matmul, at every SIMD level the CPU has, for token counts that stream and
// that do not, with row counts that are not multiples of the row tile; mixed types fall back.
TEST(Matmul, ManyEqualsEachAlone) {
  std::mt19937 rng(33);
  ThreadPool pool(2);
  for (DType t : {DType::kQ4_0, DType::kQ8_0, DType::kQ4_K, DType::kQ6_K, DType::kF16}) {
    const int64_t cols = dtype_traits(t).block_elems == 256 ? 512 : 96;
    const Matrix m0 = random_matrix(t, 37, cols, rng);
    const Matrix m1 = random_matrix(t, 8, cols, rng);
    const Matrix m2 = random_matrix(t, 13, cols, rng);
    const Matrix mixed =
        random_matrix(t == DType::kQ8_0 ? DType::kQ4_0 : DType::kQ8_0, 5, cols, rng);
    for (int64_t n_tokens : {1, 3, 4, 6}) {
      const auto x = random_x(n_tokens * cols, rng);
      for (bool with_mixed : {false, true}) {
        std::vector<const WeightMatrix*> ws = {&m0.w, &m1.w, &m2.w};
        if (with_mixed) ws.push_back(&mixed.w);
        std::vector<std::vector<float>> alone(ws.size()), together(ws.size());
        std::vector<float*> ys;
        for (size_t i = 0; i < ws.size(); ++i) {
          alone[i].assign(static_cast<size_t>(n_tokens * ws[i]->rows), 0.0f);
          together[i].assign(alone[i].size(), -7.0f);
          matmul(*ws[i], x.data(), n_tokens, alone[i].data(), pool, nullptr, MatmulMode::kDecode);
          ys.push_back(together[i].data());
        }
        matmul_many(ws, x.data(), n_tokens, ys, pool, nullptr, MatmulMode::kDecode);
        for (size_t i = 0; i < ws.size(); ++i) {
          ASSERT_EQ(alone[i], together[i]) << dtype_name(t) << " n_tokens=" << n_tokens
                                           << " matrix " << i << " mixed=" << with_mixed;
        }
      }
    }
  }
}

// The AVX512-VBMI build of the row-block kernels (byte permutes) against the plain AVX-512 build
// (word permutes): the same bits for every type, tile shape (1..4 rows x 1..4 tokens) and row tail.
TEST(Matmul, VbmiKernelsEqualWordPermuteKernels) {
  const CpuFeatures& f = cpu_features();
  if (!(f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni && f.avx512vbmi && f.gfni)) {
    GTEST_SKIP() << "needs AVX-512 VNNI + VBMI + GFNI (this CPU: " << cpu_features_summary() << ")";
  }
  std::mt19937 rng(21);
  for (DType t : {DType::kQ4_0, DType::kQ8_0, DType::kQ4_K, DType::kQ6_K}) {
    const detail::GemmKernel* plain = detail::avx512_gemm(t);
    const detail::GemmKernel* vbmi = detail::avx512_gemm_vbmi(t);
    ASSERT_NE(plain, nullptr);
    ASSERT_NE(vbmi, nullptr);
    ASSERT_NE(plain, vbmi);
    const bool k = dtype_traits(t).block_elems == 256;
    for (int64_t cols : k ? std::vector<int64_t>{256, 768} : std::vector<int64_t>{32, 160, 1568}) {
      const Matrix m = random_matrix(t, 4, cols, rng);
      const DType at = activation_type(t);
      const size_t a_bytes = dtype_row_bytes(at, static_cast<uint64_t>(cols));
      const size_t prep_stride = plain->prep_bytes(cols);
      ASSERT_EQ(prep_stride, vbmi->prep_bytes(cols));
      std::vector<uint8_t> a(a_bytes * 4), prep_plain(prep_stride * 4), prep_vbmi(prep_stride * 4);
      const auto x = random_x(4 * cols, rng);
      for (int tok = 0; tok < 4; ++tok) {
        quantize_activation(at, x.data() + tok * cols, a.data() + tok * a_bytes, cols);
        plain->prepare(a.data() + tok * a_bytes, prep_plain.data() + tok * prep_stride, cols);
        vbmi->prepare(a.data() + tok * a_bytes, prep_vbmi.data() + tok * prep_stride, cols);
      }
      ASSERT_EQ(prep_plain, prep_vbmi);
      for (int rows = 1; rows <= 4; ++rows) {
        for (int n_tok = 1; n_tok <= 4; ++n_tok) {
          std::vector<float> y_plain(16, -1.0f), y_vbmi(16, -2.0f);
          plain->run(m.data.data(), m.w.row_bytes, rows, prep_plain.data(), prep_stride, n_tok,
                     y_plain.data(), 4, cols);
          vbmi->run(m.data.data(), m.w.row_bytes, rows, prep_vbmi.data(), prep_stride, n_tok,
                    y_vbmi.data(), 4, cols);
          for (int tok = 0; tok < n_tok; ++tok) {
            for (int r = 0; r < rows; ++r) {
              ASSERT_EQ(y_plain[tok * 4 + r], y_vbmi[tok * 4 + r])
                  << dtype_name(t) << " cols=" << cols << " rows=" << rows << " n_tok=" << n_tok;
            }
          }
        }
      }
      for (int r = 0; r < 4; ++r) {
        const uint8_t* row = m.data.data() + r * m.w.row_bytes;
        EXPECT_EQ(detail::avx512_gemm_dot(t)(row, a.data(), cols),
                  detail::avx512_gemm_dot_vbmi(t)(row, a.data(), cols))
            << dtype_name(t);
      }
    }
  }
}

}  // namespace
}  // namespace enclave::kernels
