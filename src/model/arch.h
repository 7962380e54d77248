// Architecture descriptions as data: hyper-parameter keys, tensor names, flags. One definition
// per architecture in arch/<name>.cc; the forward pass reads only these facts (no per-arch code).
#pragma once

#include <array>
#include <string_view>

#include "model/model.h"

namespace enclave::model::detail {

// Per-layer tensors of the dense transformer block.
enum class LayerTensor {
  kAttnNorm,
  kAttnQ,
  kAttnK,
  kAttnV,
  kAttnOutput,
  kAttnQBias,
  kAttnKBias,
  kAttnVBias,
  kAttnOutputBias,
  kFfnNorm,
  kFfnGate,
  kFfnUp,
  kFfnDown,
  kCount,
};
constexpr int kLayerTensorCount = static_cast<int>(LayerTensor::kCount);

enum class Presence { kAbsent, kOptional, kRequired };

struct LayerTensorSpec {
  std::string_view name;  // suffix after "blk.N."; e.g. "attn_q.weight"
  Presence presence = Presence::kAbsent;
};

// Hyper-parameter key suffixes, prefixed with "<arch>." when read.
struct HParamKeys {
  std::string_view vocab_size = "vocab_size";
  std::string_view context_length = "context_length";
  std::string_view embedding_length = "embedding_length";
  std::string_view block_count = "block_count";
  std::string_view feed_forward_length = "feed_forward_length";
  std::string_view head_count = "attention.head_count";
  std::string_view head_count_kv = "attention.head_count_kv";
  std::string_view key_length = "attention.key_length";
  std::string_view value_length = "attention.value_length";
  std::string_view rms_eps = "attention.layer_norm_rms_epsilon";
  std::string_view rope_dims = "rope.dimension_count";
  std::string_view rope_freq_base = "rope.freq_base";
  std::string_view rope_scaling_type = "rope.scaling.type";
  std::string_view rope_scaling_factor = "rope.scaling.factor";
  std::string_view rope_scale_linear = "rope.scale_linear";  // legacy
  std::string_view rope_scaling_orig_ctx = "rope.scaling.original_context_length";
  std::string_view rope_scaling_attn_factor = "rope.scaling.attn_factor";
  std::string_view yarn_beta_fast = "rope.scaling.yarn_beta_fast";
  std::string_view yarn_beta_slow = "rope.scaling.yarn_beta_slow";
};

struct GlobalTensorNames {
  std::string_view token_embd = "token_embd.weight";
  std::string_view output_norm = "output_norm.weight";
  std::string_view output = "output.weight";
  std::string_view output_bias = "output.bias";
  std::string_view rope_freqs = "rope_freqs.weight";
  std::string_view layer_prefix = "blk.";
};

struct ArchSpec {
  Arch arch;
  std::string_view name;  // general.architecture value
  HParamKeys keys;
  GlobalTensorNames globals;
  std::array<LayerTensorSpec, kLayerTensorCount> layer;
  RopeType rope_type = RopeType::kNorm;
  bool output_optional = true;  // tie to token_embd when output.weight is absent
  bool output_bias_allowed = false;
  bool rope_freqs_allowed = false;  // llama3 frequency divisors
  bool rot_equals_head_dim = true;  // n_rot must equal head_dim
  float default_rope_base = 10000.0f;
};

const ArchSpec& llama_arch();  // arch/llama.cc
const ArchSpec& qwen2_arch();  // arch/qwen2.cc

// The spec for `name`, or null when the architecture is not supported.
const ArchSpec* find_arch(std::string_view name);

// The standard dense-block tensor names with every tensor absent; arch files mark presence.
std::array<LayerTensorSpec, kLayerTensorCount> dense_block_names();

}  // namespace enclave::model::detail
