// Tensor views bound at load: matrices point into the mmap; 1-D vectors too when stored as F32
// (other storage types are widened once into `owned`, a few KB per layer).
#pragma once

#include <deque>
#include <vector>

#include "gguf/gguf_file.h"
#include "kernels/matmul.h"
#include "model/arch.h"

namespace enclave::model::detail {

struct LayerWeights {
  const float* attn_norm = nullptr;  // [n_embd]
  kernels::WeightMatrix wq;          // [n_head*head_dim][n_embd]
  kernels::WeightMatrix wk;          // [n_head_kv*head_dim][n_embd]
  kernels::WeightMatrix wv;          // [n_head_kv*head_dim][n_embd]
  kernels::WeightMatrix wo;          // [n_embd][n_head*head_dim]
  const float* bq = nullptr;         // optional biases
  const float* bk = nullptr;
  const float* bv = nullptr;
  const float* bo = nullptr;
  const float* ffn_norm = nullptr;  // [n_embd]
  kernels::WeightMatrix w_gate;     // [n_ff][n_embd]
  kernels::WeightMatrix w_up;       // [n_ff][n_embd]
  kernels::WeightMatrix w_down;     // [n_embd][n_ff]
};

struct ModelWeights {
  const ArchSpec* spec = nullptr;
  const gguf::TensorInfo* token_embd = nullptr;  // [n_vocab][n_embd], any dequantizable type
  const float* output_norm = nullptr;            // [n_embd]
  kernels::WeightMatrix output;                  // [n_vocab][n_embd] (token_embd when tied)
  const float* output_bias = nullptr;            // [n_vocab] optional
  std::vector<float> rope_freqs;                 // [n_rot/2] divisors, empty when absent
  std::vector<LayerWeights> layers;
  std::deque<std::vector<float>> owned;  // widened 1-D tensors (stable addresses)
};

}  // namespace enclave::model::detail
