// `qwen2` (Qwen2/2.5, DeepSeek-R1-Distill-Qwen): NEOX RoPE (weights not permuted), required
// Q/K/V biases, no output-projection bias, optional output.bias, output tied when absent.
#include "model/arch.h"

namespace enclave::model::detail {

namespace {
ArchSpec make_qwen2() {
  ArchSpec s{};
  s.arch = Arch::kQwen2;
  s.name = "qwen2";
  s.layer = dense_block_names();
  auto mark = [&s](LayerTensor t, Presence p) { s.layer[static_cast<int>(t)].presence = p; };
  for (LayerTensor t : {LayerTensor::kAttnNorm, LayerTensor::kAttnQ, LayerTensor::kAttnK,
                        LayerTensor::kAttnV, LayerTensor::kAttnOutput, LayerTensor::kAttnQBias,
                        LayerTensor::kAttnKBias, LayerTensor::kAttnVBias, LayerTensor::kFfnNorm,
                        LayerTensor::kFfnGate, LayerTensor::kFfnUp, LayerTensor::kFfnDown}) {
    mark(t, Presence::kRequired);
  }
  s.rope_type = RopeType::kNeox;
  s.output_optional = true;
  s.output_bias_allowed = true;
  s.rope_freqs_allowed = false;
  s.rot_equals_head_dim = true;
  s.default_rope_base = 10000.0f;
  return s;
}
}  // namespace

const ArchSpec& qwen2_arch() {
  static const ArchSpec spec = make_qwen2();
  return spec;
}

}  // namespace enclave::model::detail
