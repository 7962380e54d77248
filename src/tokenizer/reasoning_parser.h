// ReasoningParser: splits DeepSeek-R1 style output "<think>reasoning</think>answer" into
// reasoning and content, for finished text and for token-by-token streams.
//
// Rules (llama.cpp's DeepSeek-R1 parsing, reference doc section 5.5):
//  * The output may open with "<think>" (after optional whitespace); when the prompt already ended
//    inside the block (R1 generation prompt "<｜Assistant｜><think>\n"), construct with
//    starts_in_reasoning = true and the opening tag is not needed (an extra one is consumed).
//  * Reasoning ends at the first "</think>"; if it never comes, everything is reasoning.
//  * Whitespace right after "<think>", right before "</think>" and right after "</think>" is
//    dropped; everything else is passed through unchanged.
//  * Streaming never emits a partial tag: "</thi" is held back until the next push decides.
//  * split(text, s) gives exactly the concatenation of push(text) and flush().
#pragma once

#include <string>
#include <string_view>

namespace enclave::tokenizer {

class ReasoningParser {
 public:
  explicit ReasoningParser(bool starts_in_reasoning);

  struct Delta {
    std::string reasoning;
    std::string content;
  };

  Delta push(std::string_view text);
  Delta flush();
  static Delta split(std::string_view full_text, bool starts_in_reasoning);

  bool in_reasoning() const {
    return state_ == State::kReasoningStart || state_ == State::kReasoning;
  }

 private:
  enum class State { kStart, kReasoningStart, kReasoning, kContentStart, kContent };
  void run(Delta& d, bool final);

  State state_;
  std::string buf_;
};

}  // namespace enclave::tokenizer
