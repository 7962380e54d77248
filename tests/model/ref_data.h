// Reader for the llama.cpp reference files in fixtures/models (<model>.ref.json).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace enclave::model::testing {

struct RefPrompt {
  std::vector<int32_t> tokens;
  std::vector<float> logits;                    // last position after the whole prompt
  std::vector<int32_t> greedy;                  // stored greedy tokens
  std::vector<float> margins;                   // top-1 minus top-2 of the vector each came from
  std::vector<std::vector<float>> step_logits;  // after feeding greedy[0], greedy[1], ...
};

struct RefTextPrompt {
  std::string text;
  std::vector<int32_t> prompt_tokens;
  std::vector<int32_t> continuation_tokens;
  std::string continuation_text;
};

struct RefFile {
  std::string model;
  int32_t n_vocab = 0;
  std::vector<RefPrompt> prompts;
  std::vector<RefTextPrompt> text_prompts;
};

std::string fixture_path(const std::string& name);  // fixtures/models/<name>
RefFile load_ref(const std::string& ref_name);      // aborts the test on parse errors

struct Diff {
  float max_abs = 0.0f;
  float rms = 0.0f;
  float ref_std = 0.0f;
};
Diff diff(const float* got, const std::vector<float>& ref);
int32_t argmax(const float* x, int32_t n);

}  // namespace enclave::model::testing
