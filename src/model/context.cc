// Context: batch validation, the layer loop (attention + FFN blocks), logits and embeddings.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <unordered_map>

#include "kernels/matmul.h"
#include "kernels/quantize.h"
#include "kernels/thread_pool.h"
#include "model/attention.h"
#include "model/ffn.h"
#include "model/kv_cache.h"
#include "model/matmul_runs.h"
#include "model/model.h"
#include "model/ops.h"
#include "model/rope.h"
#include "model/weights.h"

namespace enclave::model {

namespace detail {

// Largest number of batch tokens pushed through the layers at once; longer batches are split
// (later chunks see earlier ones through the cache), which bounds the activation buffers.
constexpr int32_t kMaxChunk = 256;
// Tokens per attention work unit.
constexpr int32_t kAttnBlock = 32;

struct ContextState {
  ContextState(const Model& m, int32_t threads)
      : model(m),
        c(m.config()),
        w(m.weights()),
        pool(threads),
        rope(m.config(), m.weights().rope_freqs) {}

  const Model& model;
  const ModelConfig& c;
  const ModelWeights& w;
  int32_t n_slots = 0;
  int32_t n_ctx = 0;
  KvCache kv;
  std::vector<int32_t> slot_len;
  kernels::ThreadPool pool;
  Rope rope;
  AttentionShape attn;
  AttentionScratch attn_scratch;

  // Activations, [capacity][...]; grown on demand up to kMaxChunk tokens.
  int32_t capacity = 0;
  std::vector<float> x, h, q, k, v, att, tmp, gate, up, cos_t, sin_t, final_rows;
  std::vector<uint8_t> mm_scratch;
  std::vector<int32_t> want_index;

  void ensure_capacity(int32_t n);
  Status validate(const Batch& b) const;
  void run_chunk(const Batch& b, int32_t begin, int32_t n, float* logits, int32_t embed_slot,
                 float* embed_sum);
};

void ContextState::ensure_capacity(int32_t n) {
  if (n <= capacity) return;
  capacity = std::max(n, std::min(kMaxChunk, std::max(capacity * 2, 1)));
  const size_t cap = static_cast<size_t>(capacity);
  const size_t E = static_cast<size_t>(c.n_embd);
  const size_t qd = static_cast<size_t>(c.n_head) * c.head_dim;
  const size_t kvd = static_cast<size_t>(c.n_head_kv) * c.head_dim;
  x.resize(cap * E);
  h.resize(cap * E);
  tmp.resize(cap * E);
  final_rows.resize(cap * E);
  q.resize(cap * qd);
  att.resize(cap * qd);
  k.resize(cap * kvd);
  v.resize(cap * kvd);
  gate.resize(cap * static_cast<size_t>(c.n_ff));
  up.resize(cap * static_cast<size_t>(c.n_ff));
  cos_t.resize(cap * static_cast<size_t>(c.n_rot / 2));
  sin_t.resize(cap * static_cast<size_t>(c.n_rot / 2));
  size_t scratch = kernels::matmul_scratch_bytes(w.output, capacity);
  for (const LayerWeights& L : w.layers) {
    for (const kernels::WeightMatrix* m :
         {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) {
      scratch = std::max(scratch, kernels::matmul_scratch_bytes(*m, capacity));
    }
  }
  mm_scratch.resize(scratch + 64);
}

Status ContextState::validate(const Batch& b) const {
  const size_t n = b.tokens.size();
  if (b.pos.size() != n || b.slot.size() != n || b.want_logits.size() != n ||
      (!b.prompt.empty() && b.prompt.size() != n)) {
    return Error(ErrorCode::kInvalidArgument,
                 "batch arrays differ in length (tokens " + std::to_string(n) + ", pos " +
                     std::to_string(b.pos.size()) + ", slot " + std::to_string(b.slot.size()) +
                     ", want_logits " + std::to_string(b.want_logits.size()) + ", prompt " +
                     std::to_string(b.prompt.size()) + ")");
  }
  std::unordered_map<int32_t, int32_t> next_pos;  // slot -> expected next position
  for (size_t i = 0; i < n; ++i) {
    const int32_t tok = b.tokens[i], p = b.pos[i], s = b.slot[i];
    if (tok < 0 || tok >= c.n_vocab) {
      return Error(ErrorCode::kInvalidArgument,
                   "batch token " + std::to_string(i) + " has id " + std::to_string(tok) +
                       ", outside the vocabulary (0.." + std::to_string(c.n_vocab - 1) + ")");
    }
    if (s < 0 || s >= n_slots) {
      return Error(ErrorCode::kInvalidArgument, "batch token " + std::to_string(i) + " uses slot " +
                                                    std::to_string(s) + "; the context has " +
                                                    std::to_string(n_slots) + " slots");
    }
    if (p < 0 || p >= n_ctx) {
      return Error(ErrorCode::kOutOfRange,
                   "position " + std::to_string(p) + " of slot " + std::to_string(s) +
                       " does not fit the context of " + std::to_string(n_ctx) +
                       " tokens; shorten the prompt or create the context with a larger n_ctx");
    }
    auto it = next_pos.find(s);
    if (it == next_pos.end()) {
      if (p > slot_len[static_cast<size_t>(s)]) {
        return Error(ErrorCode::kInvalidArgument,
                     "slot " + std::to_string(s) + " holds " +
                         std::to_string(slot_len[static_cast<size_t>(s)]) +
                         " positions but the batch starts it at position " + std::to_string(p) +
                         "; earlier positions must be decoded first");
      }
    } else if (p != it->second) {
      return Error(ErrorCode::kInvalidArgument,
                   "slot " + std::to_string(s) + " has position " + std::to_string(p) + " after " +
                       std::to_string(it->second - 1) +
                       "; positions of one slot must be consecutive in batch order");
    }
    next_pos[s] = p + 1;
  }
  return Status::ok();
}

void ContextState::run_chunk(const Batch& b, int32_t begin, int32_t n, float* logits,
                             int32_t embed_slot, float* embed_sum) {
  ensure_capacity(n);
  const int64_t E = c.n_embd;
  const int64_t qd = static_cast<int64_t>(c.n_head) * c.head_dim;
  const int64_t kvd = static_cast<int64_t>(c.n_head_kv) * c.head_dim;
  const int32_t n_pairs = c.n_rot / 2;
  const int32_t* tok = b.tokens.data() + begin;
  const int32_t* pos = b.pos.data() + begin;
  const int32_t* slot = b.slot.data() + begin;
  void* scratch = mm_scratch.data();
  // Runs of prompt / generated tokens, each through its own kernels (kernels::MatmulMode).
  const std::vector<TokenRun> runs = token_runs(b, begin, n);
  auto mm = [&](const kernels::WeightMatrix& wm, const float* in, float* out) {
    matmul_runs(wm, in, out, runs, pool, scratch);
  };

  // Embedding rows are dequantized from token_embd (any storage type) per token.
  const gguf::TensorInfo& te = *w.token_embd;
  const size_t te_row = te.row_bytes();
  for (int32_t i = 0; i < n; ++i) {
    kernels::dequantize_row(te.type, te.data + static_cast<size_t>(tok[i]) * te_row,
                            x.data() + i * E, E);
    rope.angles(pos[i], cos_t.data() + static_cast<size_t>(i) * n_pairs,
                sin_t.data() + static_cast<size_t>(i) * n_pairs);
  }
  const std::vector<TokenBlock> blocks = make_blocks(slot, pos, n, kAttnBlock);

  for (int32_t il = 0; il < c.n_layer; ++il) {
    const LayerWeights& L = w.layers[static_cast<size_t>(il)];
    // Attention block.
    for (int32_t i = 0; i < n; ++i) {
      rms_norm(x.data() + i * E, L.attn_norm, h.data() + i * E, E, c.rms_eps);
    }
    {
      const kernels::WeightMatrix* qkv[3] = {&L.wq, &L.wk, &L.wv};
      float* outs[3] = {q.data(), k.data(), v.data()};
      matmul_runs_many(qkv, h.data(), outs, runs, pool, scratch);
    }
    for (int32_t i = 0; i < n; ++i) {
      float* qi = q.data() + i * qd;
      float* ki = k.data() + i * kvd;
      if (L.bq) add_inplace(qi, L.bq, qd);
      if (L.bk) add_inplace(ki, L.bk, kvd);
      if (L.bv) add_inplace(v.data() + i * kvd, L.bv, kvd);
      const float* ct = cos_t.data() + static_cast<size_t>(i) * n_pairs;
      const float* st = sin_t.data() + static_cast<size_t>(i) * n_pairs;
      rope.apply(qi, c.n_head, ct, st);
      rope.apply(ki, c.n_head_kv, ct, st);
    }
    attention(attn, kv, il, slot, pos, n, blocks, q.data(), k.data(), v.data(), att.data(),
              attn_scratch, pool);
    mm(L.wo, att.data(), tmp.data());
    if (L.bo) {
      for (int32_t i = 0; i < n; ++i) add_inplace(tmp.data() + i * E, L.bo, E);
    }
    add_inplace(x.data(), tmp.data(), n * E);

    // FFN block.
    for (int32_t i = 0; i < n; ++i) {
      rms_norm(x.data() + i * E, L.ffn_norm, h.data() + i * E, E, c.rms_eps);
    }
    swiglu_ffn(FfnWeights{&L.w_gate, &L.w_up, &L.w_down}, h.data(), runs, gate.data(), up.data(),
               tmp.data(), scratch, pool);
    add_inplace(x.data(), tmp.data(), n * E);
  }

  // Final norm only for the rows that are needed: wanted logits and embedding tokens.
  int32_t n_rows = 0;
  std::vector<TokenRun> row_runs;  // the kept rows' kinds, for the output product
  for (int32_t i = 0; i < n; ++i) {
    const bool want = b.want_logits[static_cast<size_t>(begin + i)] != 0;
    const bool emb = embed_sum && slot[i] == embed_slot;
    if (!want && !emb) continue;
    float* row = final_rows.data() + static_cast<int64_t>(n_rows) * E;
    rms_norm(x.data() + i * E, w.output_norm, row, E, c.rms_eps);
    if (emb) add_inplace(embed_sum, row, E);
    if (want) {  // keep the row only when its logits are wanted
      append_token(row_runs, n_rows, token_mode(b, begin + i));
      ++n_rows;
    }
  }
  if (n_rows > 0 && logits) {
    matmul_runs(w.output, final_rows.data(), logits, row_runs, pool, scratch);
    if (w.output_bias) {
      for (int32_t r = 0; r < n_rows; ++r) {
        add_inplace(logits + static_cast<int64_t>(r) * c.n_vocab, w.output_bias, c.n_vocab);
      }
    }
  }
}

}  // namespace detail

Context::Context() = default;
Context::~Context() = default;

Result<std::unique_ptr<Context>> Context::create(const Model& model, int32_t n_slots, int32_t n_ctx,
                                                 KvType kv_type, int32_t n_threads) {
  if (n_slots < 1 || n_slots > 1024) {
    return Error(ErrorCode::kInvalidArgument,
                 "n_slots must be 1..1024, got " + std::to_string(n_slots));
  }
  if (n_ctx < 1 || n_ctx > (1 << 22)) {
    return Error(ErrorCode::kInvalidArgument,
                 "n_ctx must be 1..4194304, got " + std::to_string(n_ctx));
  }
  if (n_threads < 1 || n_threads > 512) {
    return Error(ErrorCode::kInvalidArgument,
                 "n_threads must be 1..512, got " + std::to_string(n_threads));
  }
  std::unique_ptr<Context> ctx(new Context());
  ctx->s_ = std::make_unique<detail::ContextState>(model, n_threads);
  detail::ContextState& s = *ctx->s_;
  const ModelConfig& c = model.config();
  s.n_slots = n_slots;
  s.n_ctx = n_ctx;
  s.slot_len.assign(static_cast<size_t>(n_slots), 0);
  ENCLAVE_TRY_STATUS(s.kv.init(c.n_layer, n_slots, n_ctx, c.n_head_kv, c.head_dim, kv_type));
  s.attn.n_head = c.n_head;
  s.attn.n_head_kv = c.n_head_kv;
  s.attn.head_dim = c.head_dim;
  s.attn.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  s.attn_scratch.reserve(n_threads, n_ctx, s.attn, detail::kAttnBlock);
  s.ensure_capacity(1);
  return ctx;
}

Status Context::decode(const Batch& batch, std::vector<float>& logits) {
  detail::ContextState& s = *s_;
  ENCLAVE_TRY_STATUS(s.validate(batch));
  const int32_t n = static_cast<int32_t>(batch.tokens.size());
  int64_t n_wanted = 0;
  for (uint8_t want : batch.want_logits) n_wanted += want ? 1 : 0;
  logits.resize(static_cast<size_t>(n_wanted) * s.c.n_vocab);
  int64_t written = 0;
  for (int32_t begin = 0; begin < n; begin += detail::kMaxChunk) {
    const int32_t len = std::min(detail::kMaxChunk, n - begin);
    s.run_chunk(batch, begin, len, logits.data() + written * s.c.n_vocab, -1, nullptr);
    for (int32_t i = begin; i < begin + len; ++i)
      written += batch.want_logits[static_cast<size_t>(i)] ? 1 : 0;
  }
  for (int32_t i = 0; i < n; ++i) {
    s.slot_len[static_cast<size_t>(batch.slot[static_cast<size_t>(i)])] =
        batch.pos[static_cast<size_t>(i)] + 1;
  }
  return Status::ok();
}

Status Context::embed(const std::vector<int32_t>& tokens, int32_t slot, std::vector<float>& out) {
  detail::ContextState& s = *s_;
  if (tokens.empty()) {
    return Error(ErrorCode::kInvalidArgument, "embed needs at least one token");
  }
  if (slot < 0 || slot >= s.n_slots) {
    return Error(
        ErrorCode::kInvalidArgument,
        "embed slot " + std::to_string(slot) + " is outside 0.." + std::to_string(s.n_slots - 1));
  }
  if (static_cast<int64_t>(tokens.size()) > s.n_ctx) {
    return Error(ErrorCode::kOutOfRange, "embedding input of " + std::to_string(tokens.size()) +
                                             " tokens exceeds the context of " +
                                             std::to_string(s.n_ctx) + " tokens");
  }
  Batch b;
  for (size_t i = 0; i < tokens.size(); ++i)
    b.add(tokens[i], static_cast<int32_t>(i), slot, false, /*is_prompt=*/true);
  s.slot_len[static_cast<size_t>(slot)] = 0;
  ENCLAVE_TRY_STATUS(s.validate(b));
  const int32_t n = static_cast<int32_t>(tokens.size());
  out.assign(static_cast<size_t>(s.c.n_embd), 0.0f);
  for (int32_t begin = 0; begin < n; begin += detail::kMaxChunk) {
    const int32_t len = std::min(detail::kMaxChunk, n - begin);
    s.run_chunk(b, begin, len, nullptr, slot, out.data());
  }
  s.slot_len[static_cast<size_t>(slot)] = n;
  const float inv = 1.0f / static_cast<float>(n);
  for (float& x : out) x *= inv;
  return Status::ok();
}

void Context::clear_slot(int32_t slot) {
  if (slot >= 0 && slot < s_->n_slots) s_->slot_len[static_cast<size_t>(slot)] = 0;
}

void Context::truncate_slot(int32_t slot, int32_t n_keep) {
  if (slot < 0 || slot >= s_->n_slots) return;
  int32_t& len = s_->slot_len[static_cast<size_t>(slot)];
  len = std::clamp(n_keep, 0, len);
}

void Context::copy_slot(int32_t src, int32_t dst, int32_t n) {
  detail::ContextState& s = *s_;
  if (src < 0 || src >= s.n_slots || dst < 0 || dst >= s.n_slots || src == dst) return;
  n = std::clamp(n, 0, s.slot_len[static_cast<size_t>(src)]);
  s.kv.copy_positions(src, dst, n);
  s.slot_len[static_cast<size_t>(dst)] = n;
}

int32_t Context::slot_length(int32_t slot) const {
  if (slot < 0 || slot >= s_->n_slots) return 0;
  return s_->slot_len[static_cast<size_t>(slot)];
}

uint64_t Context::kv_bytes() const {
  return s_->kv.bytes();
}
int32_t Context::n_ctx() const {
  return s_->n_ctx;
}
int32_t Context::n_slots() const {
  return s_->n_slots;
}
const Model& Context::model() const {
  return s_->model;
}

}  // namespace enclave::model
