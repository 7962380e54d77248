// Quantization plan: which storage type every tensor of a model gets for a requested target (a
// plain type or one of llama.cpp's K-quant mixes). The one rule set behind `enclave quantize`,
// `enclave synth` and synthesize() (model/synth.h). Pure decision logic, no I/O.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"

namespace enclave::model {

enum class QuantMix {
  kUniform,  // every quantizable tensor gets `base` (output.weight rule and fallbacks still apply)
  kQ3_K_M,
  kQ4_K_S,
  kQ4_K_M,
  kQ5_K_S,
  kQ5_K_M,
};

struct QuantTarget {
  std::string name;  // as the user spelled it, upper-case: "Q4_K_M"
  DType base;        // type of the bulk of the tensors
  QuantMix mix;
  uint32_t file_type;  // llama_ftype id written to general.file_type
};

// Parses a target name (case-insensitive); nullopt if unknown.
std::optional<QuantTarget> parse_quant_target(std::string_view name);
// "F32, F16, BF16, Q8_0, ..." for error messages and --help.
std::string quant_target_list();

// What the planner needs to know about the model (from its metadata; zeros when absent).
struct ModelFacts {
  std::string architecture;
  uint32_t n_layer = 0;   // <arch>.block_count
  uint32_t n_expert = 0;  // <arch>.expert_count
};

struct TensorDesc {
  std::string name;
  DType type = DType::kF32;
  uint32_t n_dims = 0;
  std::array<uint64_t, 4> ne = {1, 1, 1, 1};
};

struct TensorPlan {
  DType type;              // output type
  bool converted = false;  // false: bytes are copied unchanged
  bool fallback = false;   // the mix's choice did not fit ne[0]; `type` is the substitute
};

// One entry per tensor, in order. Rules (llama.cpp llama-quant.cpp, without imatrix):
//  * only 2+-D tensors are quantized, never ffn_gate_inp (router), *.bias, pos_embd or
//    token_types (llama.cpp additionally requires a "weight" suffix); other tensors are copied
//    (a quantized 1-D tensor is widened to F32);
//  * float targets (F32/F16/BF16) convert every quantizable tensor to that type;
//  * quantized targets: output.weight (token_embd.weight when there is no output.weight) gets
//    Q6_K, or Q8_0 when the target is Q8_0 or ne[0] is not a multiple of the target's block;
//    the mixes raise attn_v / ffn_down / attn_output as llama.cpp does;
//  * when ne[0] is not a multiple of the chosen type's block: Q4_K->Q5_0, Q5_K->Q5_1, Q6_K->Q8_0,
//    Q2_K/Q3_K->Q4_0 (llama.cpp uses IQ4_NL, which Enclave does not implement), then F16.
std::vector<TensorPlan> plan_quantization(const QuantTarget& target, const ModelFacts& facts,
                                          const std::vector<TensorDesc>& tensors);

}  // namespace enclave::model
