#include "kernels/matmul.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <vector>

#include "kernels/vec_dot.h"
#include "kernels/vec_dot_impl.h"

namespace enclave::kernels {
namespace {

constexpr size_t kScratchAlign = 64;

// Rows per work item: big enough to amortise scheduling (~64 KiB of weights), small enough that
// a slow (preempted) thread can be helped by the others.
// Independent of the thread count, so the row grouping (and the output bits) never depend on it.
int64_t rows_per_chunk(const WeightMatrix& w) {
  const int64_t by_bytes =
      std::max<int64_t>(4, static_cast<int64_t>((64 << 10) / std::max<size_t>(1, w.row_bytes)));
  const int64_t by_balance = std::max<int64_t>(4, w.rows / 16);
  int64_t r = std::min(by_bytes, by_balance);
  return (r + 3) / 4 * 4;  // multiple of the tile height
}

// Token-tile width for the matrix-matrix path: the quantized activations of a tile stay in L2
// while a row block of weights is reused from L1.
constexpr int64_t kTokenTile = 32;

}  // namespace

size_t matmul_scratch_bytes(const WeightMatrix& w, int64_t n_tokens) {
  const DType act = activation_type(w.type);
  if (act == DType::kF32) return 0;
  return dtype_row_bytes(act, static_cast<uint64_t>(w.cols)) * static_cast<size_t>(n_tokens) +
         kScratchAlign;
}

void matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool,
            void* scratch) {
  if (n_tokens <= 0 || w.rows <= 0) return;
  const SimdLevel level = best_simd_level();
  const DType act = activation_type(w.type);
  const VecDotFn dot = vec_dot_fn(w.type, level);
  const detail::VecDotTileFn tile =
      level == SimdLevel::kAvx512 && n_tokens > 1 ? detail::avx512_vec_dot_tile(w.type) : nullptr;

  // 1. Activations in the weight's partner type, once per token row.
  const uint8_t* a = reinterpret_cast<const uint8_t*>(x);
  size_t a_stride = static_cast<size_t>(w.cols) * sizeof(float);
  std::unique_ptr<uint8_t[]> owned;
  if (act != DType::kF32) {
    a_stride = dtype_row_bytes(act, static_cast<uint64_t>(w.cols));
    if (scratch == nullptr) {
      owned = std::make_unique<uint8_t[]>(matmul_scratch_bytes(w, n_tokens));
      scratch = owned.get();
    }
    auto* q = static_cast<uint8_t*>(scratch);
    if (n_tokens == 1) {
      quantize_activation(act, x, q, w.cols, level);
    } else {
      pool.parallel_for_ref(n_tokens, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t)
          quantize_activation(act, x + t * w.cols, q + t * a_stride, w.cols, level);
      });
    }
    a = q;
  }

  // 2. Rows are handed out in chunks from a shared counter; every (row, token) result is computed
  // by the same kernel whatever the split, so the thread count never changes the output.
  const auto* wd = static_cast<const uint8_t*>(w.data);
  const int64_t chunk = rows_per_chunk(w);
  const int64_t n_chunks = (w.rows + chunk - 1) / chunk;
  std::atomic<int64_t> next{0};
  const size_t rb = w.row_bytes;
  const int64_t rows = w.rows, cols = w.cols;

  pool.run_ref([&](int, int) {
    for (;;) {
      const int64_t c = next.fetch_add(1, std::memory_order_relaxed);
      if (c >= n_chunks) return;
      const int64_t r0 = c * chunk;
      const int64_t r1 = std::min(rows, r0 + chunk);
      if (n_tokens == 1) {
        for (int64_t r = r0; r < r1; ++r) y[r] = dot(wd + r * rb, a, cols);
        continue;
      }
      for (int64_t t0 = 0; t0 < n_tokens; t0 += kTokenTile) {
        const int64_t t1 = std::min(n_tokens, t0 + kTokenTile);
        if (tile != nullptr) {
          for (int64_t r = r0; r < r1; r += detail::kTileMaxRows) {
            const int nr = static_cast<int>(std::min<int64_t>(detail::kTileMaxRows, r1 - r));
            for (int64_t t = t0; t < t1; t += detail::kTileMaxTok) {
              const int nt = static_cast<int>(std::min<int64_t>(detail::kTileMaxTok, t1 - t));
              tile(wd + r * rb, rb, nr, a + t * a_stride, a_stride, nt, y + t * rows + r,
                   static_cast<size_t>(rows), cols);
            }
          }
        } else {
          for (int64_t t = t0; t < t1; ++t) {
            const uint8_t* at = a + t * a_stride;
            float* yt = y + t * rows;
            for (int64_t r = r0; r < r1; ++r) yt[r] = dot(wd + r * rb, at, cols);
          }
        }
      }
    }
  });
}

void matmul_reference(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y) {
  std::vector<float> row(static_cast<size_t>(w.cols));
  const auto* wd = static_cast<const uint8_t*>(w.data);
  for (int64_t r = 0; r < w.rows; ++r) {
    detail::dequantize_row_ref(w.type, wd + r * w.row_bytes, row.data(), w.cols);
    for (int64_t t = 0; t < n_tokens; ++t) {
      double sum = 0.0;
      const float* xt = x + t * w.cols;
      for (int64_t c = 0; c < w.cols; ++c) sum += static_cast<double>(row[c]) * xt[c];
      y[t * w.rows + r] = static_cast<float>(sum);
    }
  }
}

}  // namespace enclave::kernels
