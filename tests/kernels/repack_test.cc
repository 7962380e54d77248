// The rows16 decode layout (kernels/repack.h): lossless repacking, and products that are exact
// against the scalar reference kernel, independent of batch, threads and grouping, and unchanged
// on the AMX prompt path.
#include "kernels/repack.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "dot_test_util.h"
#include "kernels/matmul.h"
#include "kernels/matmul_amx.h"
#include "kernels/vec_dot.h"
#include "kernels/vec_dot_impl.h"

namespace enclave::kernels {
namespace {

using testing::Matrix;
using testing::random_matrix;
using testing::random_x;
using testing::rel_err;

// A rows16 copy of m.
struct Packed {
  std::vector<uint8_t> data;
  WeightMatrix w;
};
Packed pack(const Matrix& m) {
  Packed p;
  p.data.resize(m.data.size());
  repack_rows16(m.w.type, m.data.data(), p.data.data(), m.w.rows, m.w.cols);
  p.w = m.w;
  p.w.data = p.data.data();
  p.w.layout = WeightLayout::kRows16;
  return p;
}

// y = W x through the scalar reference kernel, group by group (the definition of the bits).
std::vector<float> scalar_rows16_product(const Packed& p, const std::vector<float>& x,
                                         int64_t n_tokens) {
  const WeightMatrix& w = p.w;
  const int64_t nb = w.cols / 32;
  std::vector<std::vector<uint8_t>> q(static_cast<size_t>(n_tokens));
  std::vector<std::vector<int32_t>> corr(q.size());
  std::vector<std::vector<float>> da(q.size());
  std::vector<detail::Rows16Token> tok(q.size());
  for (int64_t t = 0; t < n_tokens; ++t) {
    q[t].resize(dtype_row_bytes(DType::kQ8_0, static_cast<uint64_t>(w.cols)));
    quantize_activation(DType::kQ8_0, x.data() + t * w.cols, q[t].data(), w.cols);
    corr[t].resize(static_cast<size_t>(nb));
    da[t].resize(static_cast<size_t>(nb));
    const auto* qb = reinterpret_cast<const BlockQ8_0*>(q[t].data());
    detail::rows16_prepare(qb, nb, corr[t].data(), da[t].data());
    tok[t] = detail::Rows16Token{qb, corr[t].data(), da[t].data()};
  }
  std::vector<float> y(static_cast<size_t>(n_tokens * w.rows));
  const auto fn = detail::scalar_rows16(w.type);
  for (int64_t g = 0; g < w.rows / kRows16; ++g) {
    for (int64_t t = 0; t < n_tokens; ++t) {
      fn(p.data.data() + static_cast<size_t>(g) * kRows16 * w.row_bytes, nb, &tok[t], 1,
         y.data() + t * w.rows + g * kRows16, static_cast<size_t>(w.rows));
    }
  }
  return y;
}

TEST(Rows16, Supported) {
  EXPECT_TRUE(rows16_supported(DType::kQ4_0, 32, 64));
  EXPECT_FALSE(rows16_supported(DType::kQ4_0, 24, 64));  // not whole 16-row groups
  EXPECT_FALSE(rows16_supported(DType::kQ8_0, 32, 64));  // no rows16 kernel for the type
  EXPECT_FALSE(rows16_supported(DType::kQ4_0, 0, 64));
  if (rows16_preferred(DType::kQ4_0, 32, 64)) {
    EXPECT_EQ(best_simd_level(), SimdLevel::kAvx512);
  }
}

TEST(Rows16, RepackIsLossless) {
  std::mt19937 rng(31);
  for (int64_t cols : {32, 160, 1536}) {  // 1, 5 (odd) and 48 blocks
    const Matrix m = random_matrix(DType::kQ4_0, 48, cols, rng);
    const Packed p = pack(m);
    EXPECT_NE(p.data, m.data);
    std::vector<uint8_t> back(m.data.size());
    unpack_rows16(DType::kQ4_0, p.data.data(), back.data(), 48, cols);
    EXPECT_EQ(back, m.data) << cols;
    std::vector<uint8_t> in_place = m.data;
    repack_rows16_in_place(DType::kQ4_0, in_place.data(), 48, cols);
    EXPECT_EQ(in_place, p.data) << cols;
    std::vector<uint8_t> row(m.w.row_bytes);
    for (int64_t r : {0, 7, 15, 16, 47}) {
      rows16_read_row(DType::kQ4_0, p.data.data(), cols, r, row.data());
      EXPECT_TRUE(std::equal(row.begin(), row.end(), m.data.begin() + r * m.w.row_bytes))
          << "row " << r;
    }
  }
}

// The dispatched kernel (AVX-512 here) gives the scalar reference's bits, for every token count
// (1..4 in one tile, 5 and 9 across tiles) and thread count; the values agree with the GGUF
// layout's reference product.
TEST(Rows16, MatmulEqualsScalarReference) {
  std::mt19937 rng(32);
  ThreadPool p1(1), p2(2), p3(3);
  for (int64_t cols : {160, 1536}) {
    const int64_t rows = 80;
    const Matrix m = random_matrix(DType::kQ4_0, rows, cols, rng);
    const Packed p = pack(m);
    for (int64_t n_tokens : {1, 2, 3, 4, 5, 9}) {
      const auto x = random_x(n_tokens * cols, rng);
      const auto want = scalar_rows16_product(p, x, n_tokens);
      for (ThreadPool* pool : {&p1, &p2, &p3}) {
        std::vector<float> y(want.size());
        std::vector<uint8_t> scratch(matmul_scratch_bytes(p.w, n_tokens));
        matmul(p.w, x.data(), n_tokens, y.data(), *pool, scratch.data(), MatmulMode::kDecode);
        ASSERT_EQ(y, want) << "cols " << cols << " tokens " << n_tokens << " threads "
                           << pool->size();
      }
      std::vector<float> ref(want.size()), ref_packed(want.size());
      matmul_reference(m.w, x.data(), n_tokens, ref.data());
      matmul_reference(p.w, x.data(), n_tokens, ref_packed.data());
      EXPECT_EQ(ref, ref_packed);
      EXPECT_LE(rel_err(want, ref), 1e-2);
    }
  }
}

// A token's outputs never depend on the batch it is decoded in, nor on matmul_many's grouping.
TEST(Rows16, BatchAndGroupingDoNotChangeBits) {
  std::mt19937 rng(33);
  ThreadPool pool(2);
  const int64_t cols = 256;
  const Matrix a = random_matrix(DType::kQ4_0, 64, cols, rng);
  const Matrix b = random_matrix(DType::kQ4_0, 32, cols, rng);
  const Packed pa = pack(a), pb = pack(b);
  const int64_t n_tokens = 3;
  const auto x = random_x(n_tokens * cols, rng);
  std::vector<float> ya(static_cast<size_t>(n_tokens * 64)), yb(static_cast<size_t>(n_tokens * 32));
  const WeightMatrix* ws[2] = {&pa.w, &pb.w};
  float* ys[2] = {ya.data(), yb.data()};
  matmul_many(ws, x.data(), n_tokens, ys, pool, nullptr, MatmulMode::kDecode);
  for (int64_t t = 0; t < n_tokens; ++t) {
    std::vector<float> va(64), vb(32);
    matmul(pa.w, x.data() + t * cols, 1, va.data(), pool, nullptr, MatmulMode::kDecode);
    matmul(pb.w, x.data() + t * cols, 1, vb.data(), pool, nullptr, MatmulMode::kDecode);
    EXPECT_TRUE(std::equal(va.begin(), va.end(), ya.begin() + t * 64)) << "token " << t;
    EXPECT_TRUE(std::equal(vb.begin(), vb.end(), yb.begin() + t * 32)) << "token " << t;
  }
}

// Prompt batches on AMX read the rows16 weights back into GGUF rows: the same bits as the GGUF
// layout gives.
TEST(Rows16, PromptPathKeepsGgufBits) {
  if (!detail::amx_available(DType::kQ4_0)) GTEST_SKIP() << "no AMX-INT8 on this CPU";
  std::mt19937 rng(34);
  ThreadPool pool(2);
  const int64_t cols = 512, rows = 96, n_tokens = 40;
  const Matrix m = random_matrix(DType::kQ4_0, rows, cols, rng);
  const Packed p = pack(m);
  const auto x = random_x(n_tokens * cols, rng);
  std::vector<float> y(static_cast<size_t>(n_tokens * rows)), want(y.size());
  matmul(m.w, x.data(), n_tokens, want.data(), pool, nullptr, MatmulMode::kPrompt);
  matmul(p.w, x.data(), n_tokens, y.data(), pool, nullptr, MatmulMode::kPrompt);
  EXPECT_EQ(y, want);
}

}  // namespace
}  // namespace enclave::kernels
