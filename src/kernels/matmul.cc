#include "kernels/matmul.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <vector>

#include "kernels/matmul_amx.h"
#include "kernels/repack.h"
#include "kernels/vec_dot.h"
#include "kernels/vec_dot_impl.h"

namespace enclave::kernels {
namespace {

constexpr size_t kScratchAlign = 64;

// Rows per work item (the smallest guided claim, see RowClaims): big enough to amortise
// scheduling (~64 KiB of weights), small enough that a slow (preempted) thread can be helped by
// the others. The output bits never depend on the grouping: every row is computed by the same
// operation sequence whichever claim it falls in.
int64_t rows_per_chunk(const WeightMatrix& w) {
  const int64_t by_bytes =
      std::max<int64_t>(4, static_cast<int64_t>((64 << 10) / std::max<size_t>(1, w.row_bytes)));
  const int64_t by_balance = std::max<int64_t>(4, w.rows / 16);
  int64_t r = std::min(by_bytes, by_balance);
  return (r + 3) / 4 * 4;  // multiple of the tile height
}

// Guided self-scheduling of row ranges for the streaming (matrix-vector and small batch) path:
// each claim takes a share of the rows still left (at least `min_rows`), so every thread first
// streams one long contiguous run and only the tail is cut small for balance. Fixed 64 KiB chunks
// made each thread's stream restart (a cold prefetcher, a contended counter) every few µs:
// measured on 2 threads, 1536x8960 Q4_0, 20 -> 23-25 GB/s.
class RowClaims {
 public:
  RowClaims(int64_t rows, int64_t min_rows, int n_threads)
      : rows_(rows), min_rows_(min_rows), divisor_(2 * std::max(1, n_threads)) {}
  bool claim(int64_t* r0, int64_t* r1) {
    int64_t cur = next_.load(std::memory_order_relaxed);
    for (;;) {
      if (cur >= rows_) return false;
      int64_t n = std::max(min_rows_, (rows_ - cur) / divisor_);
      n = (n + 3) / 4 * 4;  // whole row tiles
      const int64_t end = std::min(rows_, cur + n);
      if (next_.compare_exchange_weak(cur, end, std::memory_order_relaxed)) {
        *r0 = cur;
        *r1 = end;
        return true;
      }
    }
  }

 private:
  std::atomic<int64_t> next_{0};
  const int64_t rows_, min_rows_;
  const int divisor_;
};

// Matrix-matrix row chunks: ~256 KiB of weights, which stay in L2 while every token tile of the
// batch passes over them.
int64_t gemm_rows_per_chunk(const WeightMatrix& w) {
  int64_t r = static_cast<int64_t>((256 << 10) / std::max<size_t>(1, w.row_bytes));
  r = std::max<int64_t>(4, std::min(r, std::max<int64_t>(4, w.rows / 8)));
  return (r + 3) / 4 * 4;
}

// Token-tile width for the generic matrix-matrix path: the quantized activations of a tile stay
// in L2 while a row block of weights is reused from L1.
constexpr int64_t kTokenTile = 32;

// Upper bound of the prepared-activation bytes of one token for the AVX-512 kernels (at most 384
// bytes per 128 Q4_0/Q8_0 elements, 320 per Q4_K/Q6_K super-block), computed here so that no
// AVX-512 code runs to size buffers.
size_t prep_bytes_bound(const WeightMatrix& w) {
  if (w.type == DType::kQ4_K || w.type == DType::kQ6_K)
    return static_cast<size_t>(w.cols / 256) * 320;
  if (w.type != DType::kQ4_0 && w.type != DType::kQ8_0) return 0;
  const uint64_t quads = (static_cast<uint64_t>(w.cols) / 32 + 3) / 4;
  return static_cast<size_t>(quads) * 384;
}

size_t align_up(size_t n) {
  return (n + kScratchAlign - 1) / kScratchAlign * kScratchAlign;
}

}  // namespace

size_t matmul_scratch_bytes(const WeightMatrix& w, int64_t n_tokens) {
  const DType act = activation_type(w.type);
  if (act == DType::kF32) return 0;
  const size_t per_token =
      align_up(dtype_row_bytes(act, static_cast<uint64_t>(w.cols))) + align_up(prep_bytes_bound(w));
  return per_token * static_cast<size_t>(n_tokens) + kScratchAlign;
}

namespace {

bool uses_amx(const WeightMatrix& w, int64_t n_tokens, MatmulMode mode) {
  return mode == MatmulMode::kPrompt ? detail::amx_available(w.type)
         : mode == MatmulMode::kAuto ? detail::amx_applies(w.type, n_tokens)
                                     : false;
}

// Whether the weights of a product stream once (the token count fits one kernel tile).
bool streams(const WeightMatrix& w, int64_t n_tokens, SimdLevel level) {
  if (w.layout == WeightLayout::kRows16) return n_tokens <= detail::kGemmMaxTok;
  const bool gemm = level == SimdLevel::kAvx512 && detail::avx512_gemm_best(w.type) != nullptr;
  return gemm ? n_tokens <= detail::kGemmMaxTok : n_tokens == 1;
}

// matmul_group for rows16 matrices (repack.h): the same plan on 16-row groups. Activations are
// quantized to the weight's partner type with each block's corrections and f32 scale beside; up to
// 4 tokens the weights stream once under guided claims (in groups), wider batches run every 4-token
// tile over a group while its weights are in L2.
void matmul_rows16(const WeightMatrix* const* ws, float* const* ys, int n, const float* x,
                   int64_t n_tokens, ThreadPool& pool, void* scratch) {
  const WeightMatrix& w = *ws[0];
  const SimdLevel level = best_simd_level();
  detail::Rows16Fn fn = level == SimdLevel::kAvx512 ? detail::avx512_rows16(w.type) : nullptr;
  if (fn == nullptr) fn = detail::scalar_rows16(w.type);
  const DType act = activation_type(w.type);
  const int64_t nb = w.cols / detail::rows16_block_elems(w.type);
  const int64_t n_corr = nb * detail::rows16_corr_per_block(w.type);
  const size_t a_stride = align_up(dtype_row_bytes(act, static_cast<uint64_t>(w.cols)));
  const size_t prep_stride = align_up(static_cast<size_t>(n_corr + nb) * 4);
  std::unique_ptr<uint8_t[]> owned;
  if (scratch == nullptr) {
    owned = std::make_unique<uint8_t[]>(matmul_scratch_bytes(w, n_tokens));
    scratch = owned.get();
  }
  const auto addr = reinterpret_cast<uintptr_t>(scratch);
  auto* q = reinterpret_cast<uint8_t*>((addr + kScratchAlign - 1) / kScratchAlign * kScratchAlign);
  uint8_t* prep = q + a_stride * static_cast<size_t>(n_tokens);
  auto token = [&](int64_t t) {
    const uint8_t* pt = prep + static_cast<size_t>(t) * prep_stride;
    return detail::Rows16Token{q + t * a_stride, reinterpret_cast<const int32_t*>(pt),
                               reinterpret_cast<const float*>(pt + n_corr * 4)};
  };
  auto quantize_tokens = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      uint8_t* qt = q + t * a_stride;
      uint8_t* pt = prep + static_cast<size_t>(t) * prep_stride;
      quantize_activation(act, x + t * w.cols, qt, w.cols, level);
      detail::rows16_prepare(w.type, qt, nb, reinterpret_cast<int32_t*>(pt),
                             reinterpret_cast<float*>(pt + n_corr * 4));
    }
  };
  if (n_tokens <= detail::kGemmMaxTok) {
    quantize_tokens(0, n_tokens);
  } else {
    pool.parallel_for_ref(n_tokens, 1, quantize_tokens);
  }

  // Groups [g0, g1) of matrix m, every token.
  const size_t group_bytes = kRows16 * w.row_bytes;
  const detail::Rows16PairFn pair =
      level == SimdLevel::kAvx512 && n_tokens == 1 ? detail::avx512_rows16_pair(w.type) : nullptr;
  auto multiply = [&](int m, int64_t g0, int64_t g1) {
    const auto* wd = static_cast<const uint8_t*>(ws[m]->data);
    const int64_t rows = ws[m]->rows;
    if (pair != nullptr) {
      // Two streams, each a contiguous run of half the range: each stream's next group follows
      // its last one, so both prefetch like one long run (adjacent pairs restarted every two
      // groups: 1536-column matrices, 14-20 KiB groups, ran ~10 % slower than 8960-column ones).
      static_assert(detail::kRows16PairGroups == 2);
      const detail::Rows16Token tok = token(0);
      const int64_t half = (g1 - g0) / 2;
      for (int64_t i = 0; i < half; ++i) {
        pair(wd + static_cast<size_t>(g0 + i) * group_bytes, group_bytes,
             static_cast<size_t>(half) * group_bytes, nb, tok, ys[m] + (g0 + i) * kRows16);
      }
      g0 += 2 * half;
    }
    for (int64_t g = g0; g < g1; ++g) {
      for (int64_t t = 0; t < n_tokens; t += detail::kGemmMaxTok) {
        const int nt = static_cast<int>(std::min<int64_t>(detail::kGemmMaxTok, n_tokens - t));
        detail::Rows16Token tok[detail::kGemmMaxTok];
        for (int i = 0; i < nt; ++i) tok[i] = token(t + i);
        fn(wd + static_cast<size_t>(g) * group_bytes, nb, tok, nt, ys[m] + t * rows + g * kRows16,
           static_cast<size_t>(rows));
      }
    }
  };
  int64_t total = 0;
  for (int m = 0; m < n; ++m) total += ws[m]->rows / kRows16;
  const int64_t min_groups = std::max<int64_t>(1, rows_per_chunk(w) / kRows16);
  RowClaims claims(total, min_groups, pool.size());
  pool.run_ref([&](int, int) {
    int64_t c0 = 0, c1 = 0;
    while (claims.claim(&c0, &c1)) {
      int64_t base = 0;
      for (int m = 0; m < n && base < c1; ++m) {
        const int64_t groups = ws[m]->rows / kRows16;
        const int64_t g0 = std::max(c0, base) - base;
        const int64_t g1 = std::min(c1, base + groups) - base;
        if (g0 < g1) multiply(m, g0, g1);
        base += groups;
      }
    }
  });
}

// The products ys[i] = ws[i] x of n matrices that share type, cols and input, on the SIMD kernels
// (never AMX): one activation quantization and one pass of the pool over all their rows. n > 1
// only when the weights stream (streams()).
void matmul_group(const WeightMatrix* const* ws, float* const* ys, int n, const float* x,
                  int64_t n_tokens, ThreadPool& pool, void* scratch) {
  const WeightMatrix& w = *ws[0];
  if (w.layout == WeightLayout::kRows16)
    return matmul_rows16(ws, ys, n, x, n_tokens, pool, scratch);
  const SimdLevel level = best_simd_level();
  const DType act = activation_type(w.type);
  const VecDotFn dot = vec_dot_fn(w.type, level);
  const detail::GemmKernel* gemm =
      level == SimdLevel::kAvx512 ? detail::avx512_gemm_best(w.type) : nullptr;
  const bool streaming = streams(w, n_tokens, level);

  // 1. Activations in the weight's partner type (and the kernel's prepared layout), once per
  // token row.
  const uint8_t* a = reinterpret_cast<const uint8_t*>(x);
  size_t a_stride = static_cast<size_t>(w.cols) * sizeof(float);
  const uint8_t* prep = nullptr;
  size_t prep_stride = 0;
  std::unique_ptr<uint8_t[]> owned;
  if (act != DType::kF32) {
    a_stride = align_up(dtype_row_bytes(act, static_cast<uint64_t>(w.cols)));
    if (scratch == nullptr) {
      owned = std::make_unique<uint8_t[]>(matmul_scratch_bytes(w, n_tokens));
      scratch = owned.get();
    }
    auto addr = reinterpret_cast<uintptr_t>(scratch);
    auto* q =
        reinterpret_cast<uint8_t*>((addr + kScratchAlign - 1) / kScratchAlign * kScratchAlign);
    uint8_t* pr = q + a_stride * static_cast<size_t>(n_tokens);
    if (gemm != nullptr) prep_stride = align_up(gemm->prep_bytes(w.cols));
    auto quantize_tokens = [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        quantize_activation(act, x + t * w.cols, q + t * a_stride, w.cols, level);
        if (gemm != nullptr) gemm->prepare(q + t * a_stride, pr + t * prep_stride, w.cols);
      }
    };
    // A few tokens are quicker to quantize here than to hand to the pool (one barrier less).
    if (n_tokens <= detail::kGemmMaxTok) {
      quantize_tokens(0, n_tokens);
    } else {
      pool.parallel_for_ref(n_tokens, 1, quantize_tokens);
    }
    a = q;
    prep = pr;
  }

  // 2. Rows of matrix m in [r0, r1). Every (row, token) result is computed by the same operation
  // sequence whatever the split, so neither the thread count nor the grouping changes the output.
  const int64_t cols = w.cols;
  auto multiply = [&](int m, int64_t r0, int64_t r1) {
    const auto* wd = static_cast<const uint8_t*>(ws[m]->data);
    const size_t rb = ws[m]->row_bytes;
    const int64_t rows = ws[m]->rows;
    float* y = ys[m];
    if (gemm != nullptr) {
      for (int64_t t = 0; t < n_tokens; t += detail::kGemmMaxTok) {
        const int nt = static_cast<int>(std::min<int64_t>(detail::kGemmMaxTok, n_tokens - t));
        for (int64_t r = r0; r < r1; r += detail::kGemmMaxRows) {
          const int nr = static_cast<int>(std::min<int64_t>(detail::kGemmMaxRows, r1 - r));
          gemm->run(wd + r * rb, rb, nr, prep + t * prep_stride, prep_stride, nt, y + t * rows + r,
                    static_cast<size_t>(rows), cols);
        }
      }
      return;
    }
    if (n_tokens == 1) {
      for (int64_t r = r0; r < r1; ++r) y[r] = dot(wd + r * rb, a, cols);
      return;
    }
    for (int64_t t0 = 0; t0 < n_tokens; t0 += kTokenTile) {
      const int64_t t1 = std::min(n_tokens, t0 + kTokenTile);
      for (int64_t t = t0; t < t1; ++t) {
        const uint8_t* at = a + t * a_stride;
        float* yt = y + t * rows;
        for (int64_t r = r0; r < r1; ++r) yt[r] = dot(wd + r * rb, at, cols);
      }
    }
  };

  if (streaming) {
    // Up to one kernel token tile the weights stream once: guided claims over the rows of all
    // the matrices, numbered one after another.
    int64_t total = 0;
    for (int m = 0; m < n; ++m) total += ws[m]->rows;
    RowClaims claims(total, rows_per_chunk(w), pool.size());
    pool.run_ref([&](int, int) {
      int64_t g0 = 0, g1 = 0;
      while (claims.claim(&g0, &g1)) {
        int64_t base = 0;
        for (int m = 0; m < n && base < g1; base += ws[m]->rows, ++m) {
          const int64_t r0 = std::max(g0, base) - base;
          const int64_t r1 = std::min(g1, base + ws[m]->rows) - base;
          if (r0 < r1) multiply(m, r0, r1);
        }
      }
    });
    return;
  }
  // Wider batches: fixed L2-sized row chunks that every token tile reuses (one matrix).
  const int64_t chunk = gemm_rows_per_chunk(w);
  const int64_t n_chunks = (w.rows + chunk - 1) / chunk;
  std::atomic<int64_t> next{0};
  pool.run_ref([&](int, int) {
    for (;;) {
      const int64_t c = next.fetch_add(1, std::memory_order_relaxed);
      if (c >= n_chunks) return;
      multiply(0, c * chunk, std::min(w.rows, (c + 1) * chunk));
    }
  });
}

}  // namespace

void matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool,
            void* scratch, MatmulMode mode) {
  if (n_tokens <= 0 || w.rows <= 0) return;
  if (uses_amx(w, n_tokens, mode)) {
    detail::amx_matmul(w, x, n_tokens, y, pool, scratch);  // prompt batches on AMX tiles
    return;
  }
  const WeightMatrix* ws[1] = {&w};
  float* ys[1] = {y};
  matmul_group(ws, ys, 1, x, n_tokens, pool, scratch);
}

void matmul_many(std::span<const WeightMatrix* const> ws, const float* x, int64_t n_tokens,
                 std::span<float* const> ys, ThreadPool& pool, void* scratch, MatmulMode mode) {
  if (n_tokens <= 0 || ws.empty()) return;
  const WeightMatrix& w0 = *ws[0];
  bool together = ws.size() > 1 && ws.size() == ys.size() &&
                  streams(w0, n_tokens, best_simd_level()) && !uses_amx(w0, n_tokens, mode);
  for (const WeightMatrix* w : ws) {
    together = together && w->type == w0.type && w->cols == w0.cols && w->rows > 0 &&
               w->layout == w0.layout;
  }
  if (!together) {
    for (size_t i = 0; i < ws.size(); ++i) matmul(*ws[i], x, n_tokens, ys[i], pool, scratch, mode);
    return;
  }
  matmul_group(ws.data(), ys.data(), static_cast<int>(ws.size()), x, n_tokens, pool, scratch);
}

void matmul_reference(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y) {
  std::vector<float> row(static_cast<size_t>(w.cols));
  std::vector<uint8_t> packed(w.row_bytes);
  const auto* wd = static_cast<const uint8_t*>(w.data);
  for (int64_t r = 0; r < w.rows; ++r) {
    const uint8_t* src = wd + r * w.row_bytes;
    if (w.layout == WeightLayout::kRows16) {
      rows16_read_row(w.type, w.data, w.cols, r, packed.data());
      src = packed.data();
    }
    detail::dequantize_row_ref(w.type, src, row.data(), w.cols);
    for (int64_t t = 0; t < n_tokens; ++t) {
      double sum = 0.0;
      const float* xt = x + t * w.cols;
      for (int64_t c = 0; c < w.cols; ++c) sum += static_cast<double>(row[c]) * xt[c];
      y[t * w.rows + r] = static_cast<float>(sum);
    }
  }
}

}  // namespace enclave::kernels
