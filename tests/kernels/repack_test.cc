// The rows16 decode layout (kernels/repack.h): lossless repacking, and products that are exact
// against the scalar reference kernel, independent of batch, threads and grouping, and unchanged
// on the AMX prompt path.
#include "kernels/repack.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
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
using testing::rows16_copy;
using Packed = testing::Rows16Copy;
using testing::rel_err;

// y = W x through the scalar reference kernel, group by group (the definition of the bits).
std::vector<float> scalar_rows16_product(const Packed& p, const std::vector<float>& x,
                                         int64_t n_tokens) {
  const WeightMatrix& w = p.w;
  const DType act = activation_type(w.type);
  const int64_t nb = w.cols / detail::rows16_block_elems(w.type);
  const int64_t n_corr = nb * detail::rows16_corr_per_block(w.type);
  std::vector<std::vector<uint8_t>> q(static_cast<size_t>(n_tokens));
  std::vector<std::vector<int32_t>> corr(q.size());
  std::vector<std::vector<float>> da(q.size());
  std::vector<detail::Rows16Token> tok(q.size());
  for (int64_t t = 0; t < n_tokens; ++t) {
    q[t].resize(dtype_row_bytes(act, static_cast<uint64_t>(w.cols)));
    quantize_activation(act, x.data() + t * w.cols, q[t].data(), w.cols);
    corr[t].resize(static_cast<size_t>(n_corr));
    da[t].resize(static_cast<size_t>(nb));
    detail::rows16_prepare(w.type, q[t].data(), nb, corr[t].data(), da[t].data());
    tok[t] = detail::Rows16Token{q[t].data(), corr[t].data(), da[t].data()};
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

// The rows16 types, with column counts of 1, an odd number and many blocks.
struct TypeCase {
  DType type;
  std::vector<int64_t> cols;
};
const TypeCase kTypes[] = {{DType::kQ4_0, {32, 160, 1536}},
                           {DType::kQ8_0, {32, 160, 1536}},
                           {DType::kQ4_K, {256, 768, 1536}},
                           {DType::kQ6_K, {256, 768, 1536}}};

TEST(Rows16, Supported) {
  EXPECT_TRUE(rows16_supported(DType::kQ4_0, 32, 64));
  EXPECT_TRUE(rows16_supported(DType::kQ8_0, 32, 64));
  EXPECT_TRUE(rows16_supported(DType::kQ4_K, 32, 512));
  EXPECT_TRUE(rows16_supported(DType::kQ6_K, 16, 256));
  EXPECT_FALSE(rows16_supported(DType::kQ4_0, 24, 64));   // not whole 16-row groups
  EXPECT_FALSE(rows16_supported(DType::kQ4_K, 32, 128));  // not whole super-blocks
  EXPECT_FALSE(rows16_supported(DType::kQ5_K, 32, 256));  // no rows16 kernel for the type
  EXPECT_FALSE(rows16_supported(DType::kQ4_0, 0, 64));
  if (rows16_preferred(DType::kQ4_0, 32, 64)) {
    EXPECT_EQ(best_simd_level(), SimdLevel::kAvx512);
  }
}

TEST(Rows16, RepackIsLossless) {
  std::mt19937 rng(31);
  for (const TypeCase& tc : kTypes) {
    for (int64_t cols : tc.cols) {
      const Matrix m = random_matrix(tc.type, 48, cols, rng);
      const Packed p = rows16_copy(m);
      const std::string where = std::string(dtype_name(tc.type)) + " cols " + std::to_string(cols);
      EXPECT_NE(p.data, m.data) << where;
      std::vector<uint8_t> back(m.data.size());
      unpack_rows16(tc.type, p.data.data(), back.data(), 48, cols);
      EXPECT_EQ(back, m.data) << where;
      std::vector<uint8_t> in_place = m.data;
      repack_rows16_in_place(tc.type, in_place.data(), 48, cols);
      EXPECT_EQ(in_place, p.data) << where;
      std::vector<uint8_t> row(m.w.row_bytes);
      for (int64_t r : {0, 7, 15, 16, 47}) {
        rows16_read_row(tc.type, p.data.data(), cols, r, row.data());
        EXPECT_TRUE(std::equal(row.begin(), row.end(), m.data.begin() + r * m.w.row_bytes))
            << where << " row " << r;
      }
    }
  }
}

// Q6_K's recoding is a bijection of the three bytes (decode inverts it on all 2^24 inputs), and the
// recoded bytes hold 4 x u0..u2 above two bits each of u3.
TEST(Rows16, Q6RecodeIsABijection) {
  int mismatches = 0;
  for (uint32_t x = 0; x < (1u << 24); ++x) {
    uint8_t a = x & 0xFF, b = (x >> 8) & 0xFF, c = x >> 16;
    const int u0 = (a & 15) | (c & 3) << 4, u1 = (b & 15) | (c >> 2 & 3) << 4;
    const int u2 = a >> 4 | (c >> 4 & 3) << 4, u3 = b >> 4 | (c >> 6) << 4;
    detail::q6_recode(&a, &b, &c);
    if (a >> 2 != u0 || b >> 2 != u1 || c >> 2 != u2 ||
        ((a & 3) | (b & 3) << 2 | (c & 3) << 4) != u3)
      ++mismatches;
    detail::q6_decode(&a, &b, &c);
    if (a != (x & 0xFF) || b != ((x >> 8) & 0xFF) || c != x >> 16) ++mismatches;
  }
  EXPECT_EQ(mismatches, 0);
}

// The dispatched kernel (AVX-512 here) gives the scalar reference's bits, for every token count
// (1..4 in one tile, 5 and 9 across tiles) and thread count; the values agree with the GGUF
// layout's reference product.
TEST(Rows16, MatmulEqualsScalarReference) {
  std::mt19937 rng(32);
  ThreadPool p1(1), p2(2), p3(3);
  for (const TypeCase& tc : kTypes) {
    for (int64_t cols : {tc.cols[1], tc.cols[2]}) {
      const int64_t rows = 80;
      const Matrix m = random_matrix(tc.type, rows, cols, rng);
      const Packed p = rows16_copy(m);
      const std::string where = std::string(dtype_name(tc.type)) + " cols " + std::to_string(cols);
      for (int64_t n_tokens : {1, 2, 3, 4, 5, 9}) {
        const auto x = random_x(n_tokens * cols, rng);
        const auto want = scalar_rows16_product(p, x, n_tokens);
        for (ThreadPool* pool : {&p1, &p2, &p3}) {
          std::vector<float> y(want.size());
          std::vector<uint8_t> scratch(matmul_scratch_bytes(p.w, n_tokens));
          matmul(p.w, x.data(), n_tokens, y.data(), *pool, scratch.data(), MatmulMode::kDecode);
          ASSERT_EQ(y, want) << where << " tokens " << n_tokens << " threads " << pool->size();
        }
        std::vector<float> ref(want.size()), ref_packed(want.size()), gguf(want.size());
        matmul_reference(m.w, x.data(), n_tokens, ref.data());
        matmul_reference(p.w, x.data(), n_tokens, ref_packed.data());
        EXPECT_EQ(ref, ref_packed) << where;
        EXPECT_LE(rel_err(want, ref), 1e-2) << where;
        // The GGUF layout's own kernels: the same products, up to float summation order.
        matmul(m.w, x.data(), n_tokens, gguf.data(), p1, nullptr, MatmulMode::kDecode);
        EXPECT_LE(rel_err(want, gguf), 1e-5) << where << " tokens " << n_tokens;
      }
    }
  }
}

// A token's outputs never depend on the batch it is decoded in, nor on matmul_many's grouping.
TEST(Rows16, BatchAndGroupingDoNotChangeBits) {
  std::mt19937 rng(33);
  ThreadPool pool(2);
  const int64_t cols = 256;
  for (const TypeCase& tc : kTypes) {
    const Matrix a = random_matrix(tc.type, 64, cols, rng);
    const Matrix b = random_matrix(tc.type, 32, cols, rng);
    const Packed pa = rows16_copy(a), pb = rows16_copy(b);
    const int64_t n_tokens = 3;
    const auto x = random_x(n_tokens * cols, rng);
    std::vector<float> ya(static_cast<size_t>(n_tokens * 64));
    std::vector<float> yb(static_cast<size_t>(n_tokens * 32));
    const WeightMatrix* ws[2] = {&pa.w, &pb.w};
    float* ys[2] = {ya.data(), yb.data()};
    matmul_many(ws, x.data(), n_tokens, ys, pool, nullptr, MatmulMode::kDecode);
    for (int64_t t = 0; t < n_tokens; ++t) {
      std::vector<float> va(64), vb(32);
      matmul(pa.w, x.data() + t * cols, 1, va.data(), pool, nullptr, MatmulMode::kDecode);
      matmul(pb.w, x.data() + t * cols, 1, vb.data(), pool, nullptr, MatmulMode::kDecode);
      EXPECT_TRUE(std::equal(va.begin(), va.end(), ya.begin() + t * 64))
          << dtype_name(tc.type) << " token " << t;
      EXPECT_TRUE(std::equal(vb.begin(), vb.end(), yb.begin() + t * 32))
          << dtype_name(tc.type) << " token " << t;
    }
  }
}

// Prompt batches on AMX unpack the rows16 groups into the tiles the GGUF rows give: the same bits
// as the GGUF layout gives.
TEST(Rows16, PromptPathKeepsGgufBits) {
  std::mt19937 rng(34);
  ThreadPool pool(2);
  for (const TypeCase& tc : kTypes) {
    if (!detail::amx_available(tc.type)) continue;
    const int64_t cols = 512, rows = 96, n_tokens = 40;
    const Matrix m = random_matrix(tc.type, rows, cols, rng);
    const Packed p = rows16_copy(m);
    const auto x = random_x(n_tokens * cols, rng);
    std::vector<float> y(static_cast<size_t>(n_tokens * rows)), want(y.size());
    matmul(m.w, x.data(), n_tokens, want.data(), pool, nullptr, MatmulMode::kPrompt);
    matmul(p.w, x.data(), n_tokens, y.data(), pool, nullptr, MatmulMode::kPrompt);
    EXPECT_EQ(y, want) << dtype_name(tc.type);
  }
}

}  // namespace
}  // namespace enclave::kernels
