// Synthetic models: random-weight GGUF files with the exact shapes and metadata of real models
// (DeepSeek-R1-Distill presets), for benchmarks and demos without downloading weights.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

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

struct SynthOptions {
  std::string preset;
  std::string type_name = "Q4_0";  // a target of model/quantize_plan.h: plain type or K-quant mix
  std::string vocab_path;          // GGUF with tokenizer.* keys (vocab-only files are fine)
  std::string out_path;
  uint64_t seed = 42;
  int32_t layers = 0;  // > 0 overrides the preset's layer count
  int32_t n_threads = 2;
  float weight_std = 0.02f;
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
// of the normal distribution), norms 1.0. Tensor types come from plan_quantization
// (model/quantize_plan.h) for `type_name`: what `enclave quantize` gives an F32 model of the
// shapes.
Result<SynthReport> synthesize(const SynthOptions& options);

}  // namespace enclave::model
