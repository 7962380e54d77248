#include "model/quantize_plan.h"

#include <cctype>
#include <cstdio>

namespace enclave::model {
namespace {

struct TargetRow {
  const char* name;
  DType base;
  QuantMix mix;
  uint32_t file_type;
};

// Plain K types map to the llama_ftype of their uniform variant (_S); Q4_K/Q5_K are uniform here,
// unlike llama-quantize where they alias the _M mixes.
constexpr TargetRow kTargets[] = {
    {"F32", DType::kF32, QuantMix::kUniform, 0},
    {"F16", DType::kF16, QuantMix::kUniform, 1},
    {"BF16", DType::kBF16, QuantMix::kUniform, 32},
    {"Q8_0", DType::kQ8_0, QuantMix::kUniform, 7},
    {"Q4_0", DType::kQ4_0, QuantMix::kUniform, 2},
    {"Q4_1", DType::kQ4_1, QuantMix::kUniform, 3},
    {"Q5_0", DType::kQ5_0, QuantMix::kUniform, 8},
    {"Q5_1", DType::kQ5_1, QuantMix::kUniform, 9},
    {"Q2_K", DType::kQ2_K, QuantMix::kUniform, 10},
    {"Q3_K", DType::kQ3_K, QuantMix::kUniform, 11},
    {"Q4_K", DType::kQ4_K, QuantMix::kUniform, 14},
    {"Q5_K", DType::kQ5_K, QuantMix::kUniform, 16},
    {"Q6_K", DType::kQ6_K, QuantMix::kUniform, 18},
    {"Q3_K_M", DType::kQ3_K, QuantMix::kQ3_K_M, 12},
    {"Q4_K_S", DType::kQ4_K, QuantMix::kQ4_K_S, 14},
    {"Q4_K_M", DType::kQ4_K, QuantMix::kQ4_K_M, 15},
    {"Q5_K_S", DType::kQ5_K, QuantMix::kQ5_K_S, 16},
    {"Q5_K_M", DType::kQ5_K, QuantMix::kQ5_K_M, 17},
};

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}
bool contains(std::string_view s, std::string_view part) {
  return s.find(part) != std::string_view::npos;
}

// llama.cpp's choice of layers that get more bits: the first and last eighth, and every third
// layer in between.
bool use_more_bits(int i, int n) {
  return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

// Layer index from "blk.<i>." (-1 if the name has none).
int layer_of(const std::string& name) {
  int layer = -1;
  if (std::sscanf(name.c_str(), "blk.%d.", &layer) != 1) return -1;
  return layer;
}

DType fallback_for(DType t) {
  switch (t) {
    case DType::kQ4_K:
      return DType::kQ5_0;
    case DType::kQ5_K:
      return DType::kQ5_1;
    case DType::kQ6_K:
      return DType::kQ8_0;
    case DType::kQ2_K:
    case DType::kQ3_K:
      return DType::kQ4_0;
    default:
      return DType::kF16;
  }
}

}  // namespace

std::optional<QuantTarget> parse_quant_target(std::string_view name) {
  std::string upper;
  for (char c : name)
    upper.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  for (const auto& row : kTargets) {
    if (upper == row.name) return QuantTarget{row.name, row.base, row.mix, row.file_type};
  }
  return std::nullopt;
}

std::string quant_target_list() {
  std::string out;
  for (const auto& row : kTargets) {
    if (!out.empty()) out += ", ";
    out += row.name;
  }
  return out;
}

std::vector<TensorPlan> plan_quantization(const QuantTarget& target, const ModelFacts& facts,
                                          const std::vector<TensorDesc>& tensors) {
  bool has_output = false;
  int n_attn_v = 0;
  for (const auto& t : tensors) {
    if (t.name == "output.weight") has_output = true;
    if (contains(t.name, "attn_v.weight")) ++n_attn_v;
  }
  const int n_layer = facts.n_layer > 0 ? static_cast<int>(facts.n_layer) : 0;
  const bool is_70b_llama = facts.architecture == "llama" && facts.n_layer == 80;
  const bool eight_experts = facts.n_expert == 8;
  const QuantMix mix = target.mix;
  const bool quantized_target = dtype_traits(target.base).quantized;

  int i_attn_v = 0;
  int i_ffn_down = 0;
  std::vector<TensorPlan> plans;
  plans.reserve(tensors.size());
  for (const auto& t : tensors) {
    // llama.cpp also requires a ".weight" suffix; every 2-D tensor of the supported
    // architectures has one, and dropping the test lets plain tensor files be converted too.
    const bool quantizable = t.n_dims >= 2 && !ends_with(t.name, ".bias") &&
                             !contains(t.name, "ffn_gate_inp.weight") &&
                             !contains(t.name, "pos_embd") && !contains(t.name, "token_types");
    if (!quantizable) {
      // Copied; a (rare) quantized 1-D tensor is widened so that it "stays F32".
      if (dtype_traits(t.type).quantized) {
        plans.push_back({DType::kF32, true, false});
      } else {
        plans.push_back({t.type, false, false});
      }
      continue;
    }
    DType type = target.base;
    if (quantized_target) {
      const bool is_output =
          t.name == "output.weight" || (!has_output && t.name == "token_embd.weight");
      if (is_output) {
        if (t.ne[0] % dtype_traits(type).block_elems != 0) {
          type = DType::kQ8_0;
        } else if (type != DType::kQ8_0) {
          type = DType::kQ6_K;
        }
      } else if (contains(t.name, "attn_v.weight")) {
        if (mix == QuantMix::kQ3_K_M) {
          type = i_attn_v < 2 ? DType::kQ5_K : DType::kQ4_K;
        } else if ((mix == QuantMix::kQ4_K_M || mix == QuantMix::kQ5_K_M) &&
                   use_more_bits(i_attn_v, n_attn_v)) {
          type = DType::kQ6_K;
        } else if (mix == QuantMix::kQ4_K_S && i_attn_v < 4) {
          type = DType::kQ5_K;
        }
        if (mix != QuantMix::kUniform && is_70b_llama &&
            (type == DType::kQ3_K || type == DType::kQ4_K)) {
          type = DType::kQ5_K;
        }
        if (mix != QuantMix::kUniform && eight_experts) type = DType::kQ8_0;
        ++i_attn_v;
      } else if (contains(t.name, "attn_k.weight")) {
        if (mix != QuantMix::kUniform && eight_experts) type = DType::kQ8_0;
      } else if (contains(t.name, "ffn_down")) {
        const int parsed = layer_of(t.name);
        const int i_layer = parsed >= 0 ? parsed : i_ffn_down;
        const int n = n_layer > 0 ? n_layer : static_cast<int>(tensors.size());
        if (mix == QuantMix::kQ3_K_M) {
          type = i_layer < n / 16 ? DType::kQ5_K : DType::kQ4_K;
        } else if ((mix == QuantMix::kQ4_K_M || mix == QuantMix::kQ5_K_M) &&
                   use_more_bits(i_layer, n)) {
          type = DType::kQ6_K;
        } else if (mix == QuantMix::kQ4_K_S && i_layer < n / 8) {
          type = DType::kQ5_K;
        }
        ++i_ffn_down;
      } else if (contains(t.name, "attn_output.weight")) {
        if (eight_experts) {
          if (mix == QuantMix::kQ3_K_M || mix == QuantMix::kQ4_K_S || mix == QuantMix::kQ4_K_M) {
            type = DType::kQ5_K;
          }
        } else if (mix == QuantMix::kQ3_K_M) {
          type = DType::kQ4_K;
        }
      } else if (contains(t.name, "attn_qkv.weight")) {
        if (mix == QuantMix::kQ3_K_M) type = DType::kQ4_K;
        if (mix == QuantMix::kQ4_K_M) type = DType::kQ5_K;
        if (mix == QuantMix::kQ5_K_M) type = DType::kQ6_K;
      }
    }
    bool fallback = false;
    if (t.ne[0] % dtype_traits(type).block_elems != 0) {
      type = fallback_for(type);
      if (t.ne[0] % dtype_traits(type).block_elems != 0) type = DType::kF16;
      fallback = true;
    }
    plans.push_back({type, type != t.type, fallback});
  }
  return plans;
}

}  // namespace enclave::model
