// Synthetic models: random-weight GGUF files with the exact shapes and metadata of real models
// (DeepSeek-R1-Distill presets), for benchmarks and demos without downloading weights.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/result.h"

namespace enclave::model {

struct SynthPreset {
  std::string_view name;          // CLI name, e.g. "r1-distill-qwen-1.5b"
  std::string_view general_name;  // general.name (suffixed " (random weights, demo)")
  std::string_view arch;          // "qwen2" / "llama"
  int32_t n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx_train;
  float rope_base, rms_eps;
  bool qkv_bias;
  bool llama3_rope;  // emits rope_freqs.weight (factor 8, low 1, high 4, original ctx 8192)
  const char* chat_template;
};

const SynthPreset* find_synth_preset(std::string_view name);
std::vector<std::string_view> synth_preset_names();

// Storage type of one tensor: name and GGUF ne.
using TensorTypeFn = std::function<DType(const std::string& name, const std::vector<uint64_t>& ne)>;

// The built-in per-tensor type plan for a mix or type name: plain types ("Q4_0", "Q8_0", "F16",
// "Q6_K", ...) and K-quant mixes ("Q4_K_M", "Q4_K_S", "Q5_K_M", "Q5_K_S"), following llama.cpp's
// default rules: 1-D tensors F32; output.weight Q6_K for 4/5-bit types (Q8_0 files keep Q8_0);
// Q*_K_M: attn_v and ffn_down Q6_K on the "more bits" layers; K-quant rows not divisible by 256
// fall back to Q5_0 / Q5_1 / Q8_0 / F16. `file_type` receives the llama_ftype id.
Result<TensorTypeFn> builtin_type_plan(std::string_view type_name, int32_t n_layer,
                                       uint32_t* file_type);

struct SynthOptions {
  std::string preset;
  std::string type_name = "Q4_0";
  std::string vocab_path;  // GGUF with tokenizer.* keys (vocab-only files are fine)
  std::string out_path;
  uint64_t seed = 42;
  int32_t layers = 0;  // > 0 overrides the preset's layer count
  int32_t n_threads = 2;
  float weight_std = 0.02f;
  // Optional: chooses every tensor's type at once (e.g. the CLI's quantize plan), overriding
  // builtin_type_plan; gets names and GGUF ne in file order, returns one type per tensor.
  std::function<Result<std::vector<DType>>(const std::vector<std::string>& names,
                                           const std::vector<std::vector<uint64_t>>& ne)>
      plan_types;
  uint32_t file_type = 0;  // general.file_type when plan_types is set
};

struct SynthReport {
  uint64_t file_bytes = 0;
  size_t n_tensors = 0;
  uint64_t n_params = 0;
  int32_t n_vocab = 0;
  int32_t n_layer = 0;
};

// Writes the model atomically. Deterministic for a given (preset, type, vocab, seed, layers),
// independent of n_threads. Weights are N(0, weight_std) (a fast binomial+uniform approximation
// of the normal distribution), norms 1.0.
Result<SynthReport> synthesize(const SynthOptions& options);

}  // namespace enclave::model
