// Registry of supported architectures and the standard dense-block tensor names.
#include "model/arch.h"

namespace enclave::model::detail {

std::array<LayerTensorSpec, kLayerTensorCount> dense_block_names() {
  std::array<LayerTensorSpec, kLayerTensorCount> t{};
  auto set = [&t](LayerTensor which, std::string_view name) {
    t[static_cast<int>(which)] = LayerTensorSpec{name, Presence::kAbsent};
  };
  set(LayerTensor::kAttnNorm, "attn_norm.weight");
  set(LayerTensor::kAttnQ, "attn_q.weight");
  set(LayerTensor::kAttnK, "attn_k.weight");
  set(LayerTensor::kAttnV, "attn_v.weight");
  set(LayerTensor::kAttnOutput, "attn_output.weight");
  set(LayerTensor::kAttnQBias, "attn_q.bias");
  set(LayerTensor::kAttnKBias, "attn_k.bias");
  set(LayerTensor::kAttnVBias, "attn_v.bias");
  set(LayerTensor::kAttnOutputBias, "attn_output.bias");
  set(LayerTensor::kFfnNorm, "ffn_norm.weight");
  set(LayerTensor::kFfnGate, "ffn_gate.weight");
  set(LayerTensor::kFfnUp, "ffn_up.weight");
  set(LayerTensor::kFfnDown, "ffn_down.weight");
  return t;
}

const ArchSpec* find_arch(std::string_view name) {
  for (const ArchSpec* spec : {&llama_arch(), &qwen2_arch()}) {
    if (spec->name == name) return spec;
  }
  return nullptr;
}

}  // namespace enclave::model::detail
