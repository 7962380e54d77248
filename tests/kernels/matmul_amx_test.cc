// The AMX-INT8 prompt-batch path (matmul_amx.cc), reached through kernels::matmul: against the
// double-precision reference, exactly on integer data, and independent of the thread count and
// of the batch a token sits in.
#include "kernels/matmul_amx.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "dot_test_util.h"
#include "kernels/matmul.h"
#include "kernels/repack.h"
#include "kernels/vec_dot.h"

namespace enclave::kernels {
namespace {

using detail::kAmxMinTokens;

#define SKIP_WITHOUT_AMX()                                                                         \
  if (!detail::amx_applies(DType::kQ4_0, kAmxMinTokens)) {                                         \
    GTEST_SKIP() << "CPU without AMX-INT8 (or capped by ENCLAVE_CPU): " << cpu_features_summary(); \
  }

const std::vector<DType> kAmxTypes = {DType::kQ4_0, DType::kQ6_K, DType::kQ8_0, DType::kQ4_K};

using testing::Matrix;
using testing::random_matrix;
using testing::random_x;
using testing::rel_err;
using testing::rows16_copy;
using testing::Rows16Copy;

std::vector<int64_t> cols_for(DType t) {
  if (dtype_traits(t).block_elems == 256) return {256, 768};
  return {96, 160, 1536};  // 96 and 160: not multiples of 128
}

TEST(MatmulAmx, FeatureDetection) {
  const CpuFeatures& f = cpu_features();
  const std::string summary = cpu_features_summary();
  EXPECT_EQ(f.amx_tile && f.amx_int8 && f.avx512f && f.avx512bw && f.avx512vl,
            summary.find("+amx") != std::string::npos)
      << summary;
  for (DType t : kAmxTypes) EXPECT_TRUE(detail::amx_has_kernel(t));
  EXPECT_FALSE(detail::amx_has_kernel(DType::kQ5_0));
  EXPECT_FALSE(detail::amx_applies(DType::kQ5_0, 128));
  EXPECT_FALSE(detail::amx_applies(DType::kQ4_0, kAmxMinTokens - 1));
}

// Within the tolerance of the existing matmul tests: 1% of the norm overall, and per output
// within 2% of sum |w * x| (8-bit activations).
TEST(MatmulAmx, MatchesReference) {
  SKIP_WITHOUT_AMX();
  std::mt19937 rng(21);
  ThreadPool pool(2);
  for (DType t : kAmxTypes) {
    for (int64_t cols : cols_for(t)) {
      for (int64_t rows : {13, 67}) {
        const Matrix m = random_matrix(t, rows, cols, rng);
        std::vector<std::vector<double>> wr;
        for (int64_t r = 0; r < rows; ++r)
          wr.push_back(testing::dequant(t, m.data.data() + r * m.w.row_bytes, cols));
        for (int64_t n_tokens :
             {kAmxMinTokens, int64_t{33}, int64_t{64}, int64_t{128}, int64_t{130}}) {
          ASSERT_TRUE(detail::amx_applies(t, n_tokens));
          const auto x = random_x(n_tokens * cols, rng);
          std::vector<float> y(static_cast<size_t>(n_tokens * rows)), ref(y.size());
          matmul(m.w, x.data(), n_tokens, y.data(), pool);
          matmul_reference(m.w, x.data(), n_tokens, ref.data());
          const std::string what = std::string(dtype_name(t)) + " cols=" + std::to_string(cols) +
                                   " rows=" + std::to_string(rows) +
                                   " n_tokens=" + std::to_string(n_tokens);
          EXPECT_LE(rel_err(y, ref), 1e-2) << what;
          for (int64_t tok = 0; tok < n_tokens; ++tok) {
            for (int64_t r = 0; r < rows; ++r) {
              double mag = 0.0;
              for (int64_t c = 0; c < cols; ++c) mag += std::fabs(wr[r][c] * x[tok * cols + c]);
              ASSERT_NEAR(y[tok * rows + r], ref[tok * rows + r], 2e-2 * mag)
                  << what << " token " << tok << " row " << r;
            }
          }
        }
      }
    }
  }
}

// Unit weight scales and integer activations: the integer tile sums are exact, so every output
// equals the exact (double) dot of the dequantized weights and the same quantized activation, up
// to the float rounding of the per-block scaling (relative to sum |w * a|, not to the result,
// which may cancel).
TEST(MatmulAmx, ExactOnIntegerData) {
  SKIP_WITHOUT_AMX();
  std::mt19937 rng(22);
  ThreadPool pool(2);
  for (DType t : kAmxTypes) {
    const int64_t cols = dtype_traits(t).block_elems == 256 ? 768 : 352;
    const int64_t rows = 19, n_tokens = 37;
    const Matrix m = random_matrix(t, rows, cols, rng, true);
    std::uniform_int_distribution<int> d(-9, 9);
    std::vector<float> x(static_cast<size_t>(n_tokens * cols));
    for (auto& v : x) v = static_cast<float>(d(rng));
    std::vector<float> y(static_cast<size_t>(n_tokens * rows));
    matmul(m.w, x.data(), n_tokens, y.data(), pool);
    const DType at = activation_type(t);
    std::vector<uint8_t> a(dtype_row_bytes(at, static_cast<uint64_t>(cols)));
    for (int64_t tok = 0; tok < n_tokens; ++tok) {
      quantize_activation(at, x.data() + tok * cols, a.data(), cols, SimdLevel::kScalar);
      const auto ad = testing::dequant(at, a.data(), cols);
      for (int64_t r = 0; r < rows; ++r) {
        const auto wr = testing::dequant(t, m.data.data() + r * m.w.row_bytes, cols);
        double ref = 0.0, mag = 0.0;
        for (int64_t c = 0; c < cols; ++c) {
          ref += wr[c] * ad[c];
          mag += std::fabs(wr[c] * ad[c]);
        }
        EXPECT_NEAR(y[tok * rows + r], ref, 1e-6 * mag)
            << dtype_name(t) << " token " << tok << " row " << r;
      }
    }
  }
}

// 1, 2 and 3 threads, with and without caller scratch, give the same bits; and a token's outputs
// do not depend on the batch it is in (tokens 0..32 of a 130-token batch equal a 33-token batch).
TEST(MatmulAmx, ThreadCountAndBatchDoNotChangeBits) {
  SKIP_WITHOUT_AMX();
  std::mt19937 rng(23);
  ThreadPool p1(1), p2(2), p3(3);
  for (DType t : kAmxTypes) {
    const int64_t cols = dtype_traits(t).block_elems == 256 ? 768 : 160;
    const int64_t rows = 203, n_tokens = 130, n_small = 33;
    const Matrix m = random_matrix(t, rows, cols, rng);
    const auto x = random_x(n_tokens * cols, rng);
    std::vector<float> y1(static_cast<size_t>(n_tokens * rows)), y2(y1.size()), y3(y1.size());
    std::vector<uint8_t> scratch(matmul_scratch_bytes(m.w, n_tokens));
    matmul(m.w, x.data(), n_tokens, y1.data(), p1, scratch.data());
    matmul(m.w, x.data(), n_tokens, y2.data(), p2);
    matmul(m.w, x.data(), n_tokens, y3.data(), p3, scratch.data());
    EXPECT_EQ(y1, y2) << dtype_name(t);
    EXPECT_EQ(y1, y3) << dtype_name(t);
    std::vector<float> ys(static_cast<size_t>(n_small * rows));
    matmul(m.w, x.data(), n_small, ys.data(), p2);
    EXPECT_TRUE(std::equal(ys.begin(), ys.end(), y1.begin())) << dtype_name(t);
  }
}

// Batches below the threshold keep the AVX-512 path, which equals vec_dot bit for bit.
TEST(MatmulAmx, SmallBatchesKeepTheVecDotBits) {
  SKIP_WITHOUT_AMX();
  std::mt19937 rng(24);
  ThreadPool pool(2);
  const DType t = DType::kQ4_0;
  const int64_t cols = 256, rows = 9, n_tokens = kAmxMinTokens - 1;
  const Matrix m = random_matrix(t, rows, cols, rng);
  const auto x = random_x(n_tokens * cols, rng);
  std::vector<float> y(static_cast<size_t>(n_tokens * rows));
  matmul(m.w, x.data(), n_tokens, y.data(), pool);
  std::vector<uint8_t> a(dtype_row_bytes(DType::kQ8_0, cols));
  for (int64_t tok = 0; tok < n_tokens; ++tok) {
    quantize_activation(DType::kQ8_0, x.data() + tok * cols, a.data(), cols);
    for (int64_t r = 0; r < rows; ++r)
      ASSERT_EQ(y[tok * rows + r], vec_dot(t, m.data.data() + r * m.w.row_bytes, a.data(), cols));
  }
}

// The column counts of the rows16 tests: one block, an odd count, and an FFN width (8960).
std::vector<int64_t> rows16_cols(DType t) {
  if (dtype_traits(t).block_elems == 256) return {256, 768, 8960};
  return {32, 160, 8960};
}

// A 64-byte aligned buffer of n bytes, every byte `fill`.
struct TileBuffer {
  explicit TileBuffer(size_t n, uint8_t fill) : bytes(n + 64, fill) {
    const auto a = reinterpret_cast<uintptr_t>(bytes.data());
    data = bytes.data() + ((64 - a % 64) % 64);
  }
  std::vector<uint8_t> bytes;
  uint8_t* data;
};

// Each rows16 group unpacks, read directly, into exactly the A tiles and per-row scale data that
// its 16 GGUF rows give, for random bytes (any scale, min, quant and f16 field) and for bytes
// drawn from 0x00, 0x7F, 0x80, 0xFF (extreme Q4_K scales, mins and nibbles; Q6_K scales -128 and
// 127 and 6-bit quants 0 and 63).
TEST(MatmulAmx, Rows16GroupsUnpackToTheGgufTiles) {
  SKIP_WITHOUT_AMX();
  std::mt19937 rng(25);
  for (DType t : kAmxTypes) {
    for (int64_t cols : rows16_cols(t)) {
      for (bool extreme : {false, true}) {
        const int64_t rows = 48;
        Matrix m = random_matrix(t, rows, cols, rng);
        if (extreme) {
          static constexpr uint8_t kExtremes[] = {0x00, 0x7F, 0x80, 0xFF};
          std::uniform_int_distribution<int> pick(0, 3);
          for (auto& b : m.data) b = kExtremes[pick(rng)];
        }
        const Rows16Copy p = rows16_copy(m);
        const size_t n = detail::amx_unpacked_tile_bytes(m.w);
        ASSERT_EQ(n, detail::amx_unpacked_tile_bytes(p.w));
        for (int64_t row0 = 0; row0 < rows; row0 += kRows16) {
          TileBuffer want(n, 0xA5), got(n, 0xA5);
          detail::amx_unpack_tile(m.w, row0, want.data);
          detail::amx_unpack_tile(p.w, row0, got.data);
          size_t first_diff = n;
          for (size_t i = 0; i < n && first_diff == n; ++i) {
            if (want.data[i] != got.data[i]) first_diff = i;
          }
          EXPECT_EQ(first_diff, n)
              << dtype_name(t) << " cols=" << cols << " extreme=" << extreme << " rows " << row0
              << "..: first differing byte (of " << n << ")";
        }
      }
    }
  }
}

// Whole products: rows16 weights give the GGUF layout's bits for 1-3 threads, 16-130 tokens.
TEST(MatmulAmx, Rows16GivesTheGgufBits) {
  SKIP_WITHOUT_AMX();
  std::mt19937 rng(26);
  ThreadPool p1(1), p2(2), p3(3);
  ThreadPool* pools[] = {&p1, &p2, &p3};
  for (DType t : kAmxTypes) {
    for (int64_t cols : rows16_cols(t)) {
      const int64_t rows = 48;
      const Matrix m = random_matrix(t, rows, cols, rng);
      const Rows16Copy p = rows16_copy(m);
      for (int64_t n_tokens : {int64_t{16}, int64_t{57}, int64_t{130}}) {
        const auto x = random_x(n_tokens * cols, rng);
        std::vector<float> want(static_cast<size_t>(n_tokens * rows));
        matmul(m.w, x.data(), n_tokens, want.data(), p2, nullptr, MatmulMode::kPrompt);
        for (ThreadPool* pool : pools) {
          std::vector<float> y(want.size());
          matmul(p.w, x.data(), n_tokens, y.data(), *pool, nullptr, MatmulMode::kPrompt);
          EXPECT_EQ(y, want) << dtype_name(t) << " cols=" << cols << " n_tokens=" << n_tokens
                             << " threads=" << pool->size();
        }
      }
    }
  }
}

}  // namespace
}  // namespace enclave::kernels
