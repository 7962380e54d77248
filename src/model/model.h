// Model and Context: load a llama / qwen2 GGUF (weights used in place from the mmap) and run the
// forward pass over batches of tokens from one or more sequences (KV slots).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"
#include "gguf/gguf_file.h"

namespace enclave::model {

enum class Arch { kLlama, kQwen2 };    // deepseek2 later
enum class RopeType { kNorm, kNeox };  // NORM: pairs (2i, 2i+1); NEOX: pairs (i, i + n_rot/2)

struct ModelConfig {
  Arch arch = Arch::kLlama;
  std::string arch_name;  // general.architecture
  int32_t n_vocab = 0;
  int32_t n_ctx_train = 0;
  int32_t n_embd = 0;
  int32_t n_layer = 0;
  int32_t n_head = 0;
  int32_t n_head_kv = 0;
  int32_t head_dim = 0;
  int32_t n_ff = 0;
  int32_t n_rot = 0;
  float rms_eps = 1e-5f;
  float rope_base = 10000.0f;
  float rope_freq_scale = 1.0f;  // 1 / rope.scaling.factor (linear and YaRN)
  RopeType rope_type = RopeType::kNorm;
  bool qkv_bias = false;
  bool tied_output = false;     // no output.weight: logits use token_embd.weight
  bool has_rope_freqs = false;  // llama3 rope_freqs.weight divisors
  // YaRN (ggml semantics); yarn_ext_factor == 0 disables the ramp.
  float yarn_ext_factor = 0.0f;
  float yarn_attn_factor = 1.0f;
  float yarn_beta_fast = 32.0f;
  float yarn_beta_slow = 1.0f;
  int32_t yarn_n_ctx_orig = 0;
};

namespace detail {
struct ModelWeights;  // weights.h: tensor views bound at load
}

class Model {
 public:
  // Loads the file (by default copied into huge-page memory, see gguf::FileMemory; kMap maps it
  // instead) and binds every tensor in place. A copied file's Q4_0 matrices are rearranged in
  // place into the kernels' rows16 decode layout where this CPU runs it faster
  // (kernels/repack.h; ~half the uops per weight byte); a mapped file keeps the GGUF layout, as
  // do embeddings (read by row). Errors: unsupported
  // architecture (kUnsupported, naming it), missing tensor (kNotFound, naming it), wrong shape
  // or type (kCorruptData / kUnsupported, naming the tensor and both shapes).
  static Result<std::unique_ptr<Model>> load(const std::string& gguf_path,
                                             gguf::FileMemory memory = gguf::FileMemory::kCopy);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return config_; }
  const gguf::GgufFile& file() const { return file_; }  // tokenizer / chat template
  uint64_t weight_bytes() const { return weight_bytes_; }
  // How many weight matrices were repacked into the rows16 decode layout at load.
  int repacked_matrices() const { return repacked_matrices_; }

  const detail::ModelWeights& weights() const { return *weights_; }  // for Context

 private:
  explicit Model(gguf::GgufFile file);
  gguf::GgufFile file_;
  ModelConfig config_;
  std::unique_ptr<detail::ModelWeights> weights_;
  uint64_t weight_bytes_ = 0;
  int repacked_matrices_ = 0;
};

enum class KvType { kF16, kQ8_0, kF32 };

// One decode step: tokens from one or more sequences.
struct Batch {
  std::vector<int32_t> tokens;       // [n]
  std::vector<int32_t> pos;          // [n] absolute position in its sequence
  std::vector<int32_t> slot;         // [n] KV slot (sequence) id, 0..n_slots-1
  std::vector<uint8_t> want_logits;  // [n] 1 => logits for this token are returned
  // [n] or empty (= all 0). 1: a prompt token, computed with the prompt kernels (AMX where the CPU
  // has it) whatever the batch; 0: a generated token, computed with kernels whose bits do not
  // depend on the rest of the batch (kernels::MatmulMode).
  std::vector<uint8_t> prompt;

  void clear() {
    tokens.clear();
    pos.clear();
    slot.clear();
    want_logits.clear();
    prompt.clear();
  }
  void add(int32_t token, int32_t position, int32_t slot_id, bool logits, bool is_prompt = false) {
    tokens.push_back(token);
    pos.push_back(position);
    slot.push_back(slot_id);
    want_logits.push_back(logits ? 1 : 0);
    prompt.push_back(is_prompt ? 1 : 0);
  }
  size_t size() const { return tokens.size(); }
};

namespace detail {
struct ContextState;  // context.cc: KV cache, scratch, thread pool
}

// KV cache for n_slots sequences of up to n_ctx tokens each, allocated up front; scratch buffers.
// Not thread-safe: one caller at a time (the engine's scheduler thread).
class Context {
 public:
  static Result<std::unique_ptr<Context>> create(const Model& model, int32_t n_slots, int32_t n_ctx,
                                                 KvType kv_type, int32_t n_threads);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // Runs the forward pass; logits for each want_logits token, in batch order:
  // [n_wanted][n_vocab]. Tokens of the same slot must have consecutive positions; a slot's
  // earlier positions must already be in the cache (the first position of a slot in the batch
  // may be at most the slot's current length; later cached positions are overwritten).
  Status decode(const Batch& batch, std::vector<float>& logits);

  // Runs `tokens` at positions 0.. of `slot` (its cache is replaced) and returns the mean of the
  // final normed hidden states (after output_norm) over those tokens: [n_embd]. Not normalized.
  Status embed(const std::vector<int32_t>& tokens, int32_t slot, std::vector<float>& out);

  void clear_slot(int32_t slot);                        // forget its cache
  void truncate_slot(int32_t slot, int32_t n_keep);     // keep the first n_keep positions
  void copy_slot(int32_t src, int32_t dst, int32_t n);  // copy first n positions (prefix sharing)
  int32_t slot_length(int32_t slot) const;              // positions cached for `slot`

  uint64_t kv_bytes() const;
  int32_t n_ctx() const;
  int32_t n_slots() const;
  const Model& model() const;

 private:
  Context();
  std::unique_ptr<detail::ContextState> s_;
};

const char* kv_type_name(KvType t);
const char* arch_name(Arch a);

}  // namespace enclave::model
