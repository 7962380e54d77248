// Chat templates embedded for `enclave synth` (the binary must not depend on fixture files).
#pragma once

namespace enclave::model {

extern const char* const kR1DistillQwenTemplate;   // DeepSeek-R1-Distill-Qwen
extern const char* const kR1DistillLlamaTemplate;  // DeepSeek-R1-Distill-Llama

}  // namespace enclave::model
