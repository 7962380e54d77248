// Attention: cache write, then per (token block, KV head) tasks spread over the pool.
#include "model/attention.h"

#include <algorithm>
#include <cstring>

#include "model/ops.h"

namespace enclave::model::detail {

std::vector<TokenBlock> make_blocks(const int32_t* slot, const int32_t* pos, int32_t n,
                                    int32_t max_block) {
  std::vector<TokenBlock> blocks;
  int32_t i = 0;
  while (i < n) {
    TokenBlock b;
    b.begin = i;
    b.slot = slot[i];
    b.pos0 = pos[i];
    b.n = 1;
    while (i + b.n < n && b.n < max_block && slot[i + b.n] == b.slot &&
           pos[i + b.n] == b.pos0 + b.n) {
      ++b.n;
    }
    blocks.push_back(b);
    i += b.n;
  }
  return blocks;
}

void AttentionScratch::reserve(int n_threads, int32_t n_ctx, const AttentionShape& s,
                               int32_t max_block) {
  per_thread_.resize(static_cast<size_t>(n_threads));
  for (Buffers& b : per_thread_) {
    b.keys.resize(static_cast<size_t>(n_ctx) * s.head_dim);
    b.values.resize(static_cast<size_t>(n_ctx) * s.head_dim);
    b.scores.resize(static_cast<size_t>(n_ctx));
  }
}

void attention(const AttentionShape& s, KvCache& cache, int32_t layer, const int32_t* slot,
               const int32_t* pos, int32_t n, const std::vector<TokenBlock>& blocks, const float* q,
               const float* k, const float* v, float* out, AttentionScratch& scratch,
               kernels::ThreadPool& pool) {
  const int32_t D = s.head_dim;
  const size_t q_stride = static_cast<size_t>(s.n_head) * D;
  const size_t kv_stride = static_cast<size_t>(s.n_head_kv) * D;
  for (int32_t i = 0; i < n; ++i) {
    cache.store(layer, slot[i], pos[i], k + i * kv_stride, v + i * kv_stride);
  }
  const int32_t group = s.n_head / s.n_head_kv;
  const bool f32_cache = cache.dtype() == DType::kF32;
  const int64_t n_tasks = static_cast<int64_t>(blocks.size()) * s.n_head_kv;

  pool.run([&](int ti, int nt) {
    // Interleaved assignment: later blocks attend over more positions, so this balances better
    // than contiguous chunks.
    for (int64_t task = ti; task < n_tasks; task += nt) {
      const TokenBlock& b = blocks[static_cast<size_t>(task / s.n_head_kv)];
      const int32_t g = static_cast<int32_t>(task % s.n_head_kv);
      const int32_t n_kv = b.pos0 + b.n;  // positions visible to the block's last token
      const float* keys;
      const float* values;
      if (f32_cache) {
        keys = reinterpret_cast<const float*>(cache.k_row(layer, b.slot, g, 0));
        values = reinterpret_cast<const float*>(cache.v_row(layer, b.slot, g, 0));
      } else {
        cache.load_rows(cache.k_row(layer, b.slot, g, 0), n_kv, scratch.keys(ti));
        cache.load_rows(cache.v_row(layer, b.slot, g, 0), n_kv, scratch.values(ti));
        keys = scratch.keys(ti);
        values = scratch.values(ti);
      }
      float* scores = scratch.scores(ti);
      for (int32_t j = 0; j < b.n; ++j) {
        const int32_t i = b.begin + j;
        const int32_t n_vis = b.pos0 + j + 1;  // causal: positions 0..pos
        for (int32_t hh = 0; hh < group; ++hh) {
          const int32_t h = g * group + hh;
          const float* qh = q + i * q_stride + static_cast<size_t>(h) * D;
          for (int32_t t = 0; t < n_vis; ++t) {
            scores[t] = dot_f32(qh, keys + static_cast<size_t>(t) * D, D) * s.scale;
          }
          softmax_inplace(scores, n_vis);
          float* oh = out + i * q_stride + static_cast<size_t>(h) * D;
          std::memset(oh, 0, sizeof(float) * static_cast<size_t>(D));
          for (int32_t t = 0; t < n_vis; ++t) {
            axpy_f32(scores[t], values + static_cast<size_t>(t) * D, oh, D);
          }
        }
      }
    }
  });
}

}  // namespace enclave::model::detail
