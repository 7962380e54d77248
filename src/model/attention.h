// Grouped-query causal attention over the KV cache, shared by every dense architecture.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/thread_pool.h"
#include "model/kv_cache.h"

namespace enclave::model::detail {

struct AttentionShape {
  int32_t n_head = 0;
  int32_t n_head_kv = 0;
  int32_t head_dim = 0;
  float scale = 1.0f;  // applied to q.k
};

// A block of consecutive batch tokens of one slot with consecutive positions; the attention work
// unit together with one KV head (keys/values are widened once per block and head).
struct TokenBlock {
  int32_t begin = 0;  // batch index of the first token
  int32_t n = 0;
  int32_t slot = 0;
  int32_t pos0 = 0;  // position of the first token
};

// Splits a validated batch (same-slot tokens adjacent with consecutive positions) into blocks.
std::vector<TokenBlock> make_blocks(const int32_t* slot, const int32_t* pos, int32_t n,
                                    int32_t max_block);

// Per-thread scratch of the attention loop.
class AttentionScratch {
 public:
  void reserve(int n_threads, int32_t n_ctx, const AttentionShape& s, int32_t max_block);
  float* keys(int t) { return per_thread_[static_cast<size_t>(t)].keys.data(); }
  float* values(int t) { return per_thread_[static_cast<size_t>(t)].values.data(); }
  float* scores(int t) { return per_thread_[static_cast<size_t>(t)].scores.data(); }

 private:
  struct Buffers {
    std::vector<float> keys, values;  // [n_ctx][head_dim]
    std::vector<float> scores;        // [n_ctx]
  };
  std::vector<Buffers> per_thread_;
};

// Stores the batch's keys/values (post-RoPE) into `cache` at layer `layer`, then computes, for
// each token, softmax(q.K^T * scale) V over positions 0..pos of its own slot.
// q, out: [n][n_head*head_dim]; k, v: [n][n_head_kv*head_dim].
void attention(const AttentionShape& s, KvCache& cache, int32_t layer, const int32_t* slot,
               const int32_t* pos, int32_t n, const std::vector<TokenBlock>& blocks, const float* q,
               const float* k, const float* v, float* out, AttentionScratch& scratch,
               kernels::ThreadPool& pool);

}  // namespace enclave::model::detail
