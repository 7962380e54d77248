// `llama` (Llama 2/3, DeepSeek-R1-Distill-Llama): NORM RoPE on converter-permuted Q/K rows,
// optional llama3 rope_freqs divisors, biases optional (absent in Llama 3), output may be tied.
#include "model/arch.h"

namespace enclave::model::detail {

namespace {
ArchSpec make_llama() {
  ArchSpec s{};
  s.arch = Arch::kLlama;
  s.name = "llama";
  s.layer = dense_block_names();
  auto mark = [&s](LayerTensor t, Presence p) { s.layer[static_cast<int>(t)].presence = p; };
  for (LayerTensor t : {LayerTensor::kAttnNorm, LayerTensor::kAttnQ, LayerTensor::kAttnK,
                        LayerTensor::kAttnV, LayerTensor::kAttnOutput, LayerTensor::kFfnNorm,
                        LayerTensor::kFfnGate, LayerTensor::kFfnUp, LayerTensor::kFfnDown}) {
    mark(t, Presence::kRequired);
  }
  for (LayerTensor t : {LayerTensor::kAttnQBias, LayerTensor::kAttnKBias, LayerTensor::kAttnVBias,
                        LayerTensor::kAttnOutputBias}) {
    mark(t, Presence::kOptional);
  }
  s.rope_type = RopeType::kNorm;
  s.output_optional = true;
  s.output_bias_allowed = false;
  s.rope_freqs_allowed = true;
  s.rot_equals_head_dim = true;
  s.default_rope_base = 10000.0f;
  return s;
}
}  // namespace

const ArchSpec& llama_arch() {
  static const ArchSpec spec = make_llama();
  return spec;
}

}  // namespace enclave::model::detail
